-- GET /aggregations/<a>. KEYS: aggrs. ARGV: aggregation id.
-- Returns {"notfound"} or {"ok", limit, rate, proxy, paused, ready, delayed, inflight}.
local a = ARGV[1]
if redis.call('SISMEMBER', KEYS[1], a) == 0 then return {'notfound'} end
local v = aggr_view(a)
table.insert(v, 1, 'ok')
return v
