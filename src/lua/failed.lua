-- Failed callbacks for the dashboard, newest first. ARGV: max entries. Returns {id, url,
-- aggr, callback_error, updated_at} flat; ids whose job hash is gone (retention over)
-- or whose callback is no longer Failed are skipped.
local max = tonumber(ARGV[1])
local out = {}
local n = 0
for _, id in ipairs(redis.call('ZREVRANGE', 'cb:failed', 0, -1)) do
  if n >= max then break end
  local h = redis.call('HMGET', 'job:' .. id, 'CallbackState', 'URL', 'AggrID', 'CallbackMeta',
    'UpdatedAt')
  if h[1] == 'Failed' then
    n = n + 1
    out[#out + 1] = id
    out[#out + 1] = h[2] or ''
    out[#out + 1] = h[3] or ''
    out[#out + 1] = h[4] or ''
    out[#out + 1] = tonumber(h[5]) or 0
  end
end
return out
