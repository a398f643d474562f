-- PATCH /aggregations/<a>. KEYS: aggrs, aggr:<a>, ready, q:<a>, throttled. ARGV: aggregation id, limit
-- ("" unchanged), rate ("" unchanged), paused ("1", "0", "" unchanged).
-- Pausing takes the aggregation out of `ready` (claim.lua only starts jobs of
-- aggregations there, and mark_ready never puts a paused one back), so no processor
-- starts its jobs; running ones finish. Resuming or a higher limit settles it: back in
-- `ready` when it has work and a free slot. The fields persist in aggr:<a>.
-- A paused aggregation also leaves `throttled` (where it may wait for an origin pause or
-- its rate), so claim.lua cannot move it back; resuming parks it there again if a wait
-- still holds. Returns as aggr_get.lua.
local a = ARGV[1]
if redis.call('SISMEMBER', KEYS[1], a) == 0 then return {'notfound'} end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 'limit', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'rate', ARGV[3]) end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[2], 'paused', 1)
  redis.call('ZREM', KEYS[3], a)
  redis.call('ZREM', KEYS[5], a)
elseif ARGV[4] == '0' then
  redis.call('HDEL', KEYS[2], 'paused')
end
settle_aggr(a) -- lib.lua's helper, which derives the aggregation's keys from its id
return aggr_view(KEYS[2], KEYS[4])
