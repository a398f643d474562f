-- Aggregations for the dashboard. ARGV: max entries. Returns {aggr, limit, proxy,
-- ready, delayed, inflight} flat, for every known aggregation (up to max).
local max = tonumber(ARGV[1])
local out = {}
local n = 0
for _, a in ipairs(redis.call('SMEMBERS', 'aggrs')) do
  if n >= max then break end
  n = n + 1
  local h = redis.call('HMGET', 'aggr:' .. a, 'limit', 'proxy', 'delayed', 'inflight')
  out[#out + 1] = a
  out[#out + 1] = h[1] or tostring(DEFAULT_LIMIT)
  out[#out + 1] = h[2] or ''
  out[#out + 1] = redis.call('LLEN', 'q:' .. a)
  out[#out + 1] = tonumber(h[3]) or 0
  out[#out + 1] = tonumber(h[4]) or 0
end
return out
