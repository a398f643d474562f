-- Callbacks waiting for a retry, for the dashboard. KEYS[1]: cb:delayed. ARGV: max
-- entries. O(max): ZCARD plus the first max members by due time, soonest first.
-- Returns {count, now_ms, id, url, aggr, callback_count, last_error, due_ms, ...}; the job hash
-- (job:<id>, derived from each member, so not in KEYS) gives the rest. A member whose
-- hash is gone is listed with empty fields (cb_claim.lua drops it when it falls due).
local max = tonumber(ARGV[1])
local out = {redis.call('ZCARD', KEYS[1]), now_ms()}
local page = redis.call('ZRANGE', KEYS[1], 0, max - 1, 'WITHSCORES')
for i = 1, #page, 2 do
  local h = redis.call('HMGET', 'job:' .. page[i], 'URL', 'AggrID', 'CallbackCount',
    'CallbackMeta')
  out[#out + 1] = page[i]
  out[#out + 1] = h[1] or ''
  out[#out + 1] = h[2] or ''
  out[#out + 1] = tonumber(h[3]) or 0
  out[#out + 1] = h[4] or ''
  out[#out + 1] = tonumber(page[i + 1])
end
return out
