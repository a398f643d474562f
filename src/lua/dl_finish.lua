-- Apply the outcome of a download attempt, only while the caller still holds the lease.
-- ARGV: id, aggr, owner, op, delay_ms, retention_ms, then job field/value pairs.
-- op: "done" (Success/Failed: callback or retention), "delay" (retry later),
-- "requeue" (back to the front of the queue at once). Returns 1, or 0 if the lease is lost.
local id, a, owner, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local jk, m = 'job:' .. id, ARGV[1] .. ':' .. ARGV[2]
local j = redis.call('HMGET', jk, 'Owner', 'CallbackURL', 'CallbackDst')
if j[1] ~= owner or redis.call('ZREM', 'leases', m) == 0 then return 0 end
local now = now_ms()
release_slot(a)
bw_release(a, owner)
local set = {'Owner', '', 'UpdatedAt', now}
for i = 7, #ARGV do set[#set + 1] = ARGV[i] end
local qlen
if op == 'delay' then
  set[#set + 1] = 'NextAttemptAt'
  set[#set + 1] = now + delay
end
if op == 'done' then
  route_finished(id, now, retention, {j[2], j[3]}, set)
else
  redis.call('HSET', jk, unpack(set))
  if op == 'delay' then
    redis.call('ZADD', 'delayed', now + delay, m)
    redis.call('HINCRBY', 'aggr:' .. a, 'delayed', 1)
  else
    qlen = redis.call('LPUSH', 'q:' .. a, id)
  end
end
settle_aggr(a, qlen)
return 1
