-- Aggregations for the dashboard. ARGV: max entries. Returns {aggr, limit, proxy,
-- ready, delayed, inflight, rate, effective limit, paused until ms, waiting} flat, for
-- every known aggregation (up to max).
local max = tonumber(ARGV[1])
local out = {}
local n = 0
for _, a in ipairs(redis.call('SMEMBERS', 'aggrs')) do
  if n >= max then break end
  n = n + 1
  local st = aggr_state(a)
  local qlen = redis.call('LLEN', 'q:' .. a)
  for _, v in ipairs({a, st.limit, st.proxy, qlen, st.delayed, st.inflight}) do
    out[#out + 1] = v
  end
  for _, v in ipairs(throttle_view(st, qlen)) do out[#out + 1] = v end
end
return out
