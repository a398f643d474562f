-- Apply the outcome of a download attempt, only while the caller still holds the lease.
-- ARGV: id, aggr, owner, op, delay_ms, retention_ms, then job field/value pairs.
-- op: "done" (Success/Failed: callback or retention), "delay" (retry later),
-- "requeue" (back to the front of the queue at once). Returns 1, 0 if the lease is lost,
-- or 2 if the job was cancelled meanwhile (DELETE /download/<id>): a file this attempt
-- stored (StoreKey among the pairs) is then queued for deletion at once.
local id, a, owner, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local jk, m = 'job:' .. id, ARGV[1] .. ':' .. ARGV[2]
local j = redis.call('HMGET', jk, 'Owner', 'CallbackURL', 'CallbackDst', 'DownloadState')
if j[4] == 'Cancelled' then
  for i = 7, #ARGV - 1, 2 do
    if ARGV[i] == 'StoreKey' then schedule_reap(id, now_ms(), ARGV[i + 1]) end
  end
  return 2
end
if j[1] ~= owner or redis.call('ZREM', 'leases', m) == 0 then return 0 end
local now = now_ms()
release_slot(a)
bw_release(a, owner)
redis.call('ZREM', 'running:' .. a, id) -- the aggregation's index of its downloads
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
    redis.call('ZADD', 'delayed:' .. a, now + delay, id) -- the aggregation's index
    redis.call('HINCRBY', 'aggr:' .. a, 'delayed', 1)
  else
    qlen = redis.call('LPUSH', 'q:' .. a, id)
  end
end
settle_aggr(a, qlen)
return 1
