-- GET /download/<id>. ARGV: id. Returns {job hash field/value pairs, PTTL, throttle}
-- where throttle is the job's aggregation's {limit, rate, effective limit, paused until ms,
-- waiting} (see throttle_view), {} when the aggregation is gone. The aggregation's key
-- is derived from the job's AggrID, which only the hash holds.
local jk = 'job:' .. ARGV[1]
local h = redis.call('HGETALL', jk)
if #h == 0 then return {h, -2, {}} end
local a = redis.call('HGET', jk, 'AggrID')
local view = {}
if a and redis.call('EXISTS', 'aggr:' .. a) == 1 then
  local st = aggr_state(a)
  view = throttle_view(st, redis.call('LLEN', 'q:' .. a))
  table.insert(view, 1, st.limit)
end
return {h, redis.call('PTTL', jk), view}
