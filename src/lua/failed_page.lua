-- GET /failed: one page of jobs whose download (KEYS: dl:failed) or callback (KEYS:
-- cb:failed) failed for good, newest first. ARGV: kind ("download"/"callback"),
-- offset, count. Entries whose job has expired or was retried are dropped from the
-- index as they are met (job:<id> derives from the listed ids). Returns {next_cursor,
-- {{id, url, aggr, error, failed_at}, ...}}.
local kind, off, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local r = redis.call('ZREVRANGE', KEYS[1], off, off + count - 1, 'WITHSCORES')
local total = redis.call('ZCARD', KEYS[1])
local out, stale = {}, 0
for i = 1, #r, 2 do
  local id = r[i]
  local h = redis.call('HMGET', 'job:' .. id, 'URL', 'AggrID', 'DownloadState', 'DownloadMeta',
    'CallbackState', 'CallbackMeta')
  local ok, err = false, ''
  if kind == 'download' then
    ok, err = h[3] == 'Failed', h[4]
  else
    ok, err = h[5] == 'Failed', h[6]
  end
  if ok then
    out[#out + 1] = {id, h[1] or '', h[2] or '', err or '', r[i + 1]}
  else
    redis.call('ZREM', KEYS[1], id)
    stale = stale + 1
  end
end
local nxt = ''
if off + count < total then nxt = tostring(off + count - stale) end
return {nxt, out}
