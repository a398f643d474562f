-- Apply the outcome of a download attempt, only while the caller still holds the lease.
-- ARGV: id, aggr, owner, op, delay_ms, retention_ms, then job field/value pairs.
-- op: "done" (Success/Failed: callback or retention), "delay" (retry later),
-- "requeue" (back to the front of the queue at once). Returns 1, or 0 if the lease is lost.
local id, a, owner, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local jk, m = 'job:' .. id, ARGV[1] .. ':' .. ARGV[2]
if not redis.call('ZSCORE', 'leases', m) or redis.call('HGET', jk, 'Owner') ~= owner then
  return 0
end
local now = now_ms()
redis.call('ZREM', 'leases', m)
release_slot(a)
redis.call('HSET', jk, 'Owner', '', 'UpdatedAt', now)
hset_pairs(jk, ARGV, 7)
if op == 'done' then
  route_finished(id, now, retention)
elseif op == 'delay' then
  redis.call('HSET', jk, 'NextAttemptAt', now + delay)
  redis.call('ZADD', 'delayed', now + delay, m)
  redis.call('HINCRBY', 'aggr:' .. a, 'delayed', 1)
else
  redis.call('LPUSH', 'q:' .. a, id)
end
mark_ready(a)
gc_aggr(a)
return 1
