-- GET /aggregations/<a>. KEYS: aggrs, aggr:<a>, q:<a>. ARGV: aggregation id.
-- Returns {"notfound"} or {"ok", limit, rate, proxy, paused, ready, delayed, inflight}.
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'notfound'} end
return aggr_view(KEYS[2], KEYS[3])
