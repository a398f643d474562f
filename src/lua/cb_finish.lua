-- Apply the outcome of a callback attempt, only while the caller holds the lease.
-- ARGV: id, owner, op, delay_ms, retention_ms, deletion_ms, history_ms, then
-- field/value pairs.
-- op: "delivered" (file deletion scheduled; the job hash stays history_ms as
-- CallbackState Delivered for GET /download/<id>, or leaves at once when 0), "delay"
-- (retry later),
-- "failed" (final: kept for the retention period and listed in cb:failed, newest 1000),
-- "requeue" (front of the queue).
-- Returns 1, or 0 if the lease is lost.
local id, owner, op = ARGV[1], ARGV[2], ARGV[3]
local delay, retention, deletion = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local history = tonumber(ARGV[7])
local jk = 'job:' .. id
local j = redis.call('HMGET', jk, 'Owner', 'StoreKey', 'DownloadMeta', 'LastError', 'ImageSize',
  'CallbackMeta')
if j[1] ~= owner or redis.call('ZREM', 'cb:leases', id) == 0 then
  return 0
end
local now = now_ms()
if op == 'delivered' then
  redis.call('ZREM', 'cb:failed', id)
  schedule_reap(id, now + deletion, j[2])
  if history > 0 then
    -- the outcome is what is remembered: working state and empty fields go (about 460
    -- bytes are left of a typical job instead of about 710)
    local drop = {'Owner', 'StoreKey', 'StartedAt', 'LostLeases', 'NextAttemptAt'}
    -- a failed download (DownloadMeta set) keeps its request headers: POST /failed/retry
    -- may run it again while it is remembered
    if not j[3] or j[3] == '' then drop[#drop + 1] = 'RequestHeaders' end
    for i, f in ipairs({'DownloadMeta', 'LastError', 'ImageSize', 'CallbackMeta'}) do
      if j[i + 2] == '' then drop[#drop + 1] = f end
    end
    redis.call('HDEL', jk, unpack(drop))
    redis.call('HSET', jk, 'CallbackState', 'Delivered', 'DeliveredAt', now, 'UpdatedAt', now)
    hset_pairs(jk, ARGV, 8)
    redis.call('PEXPIRE', jk, history)
  else
    redis.call('DEL', jk)
  end
  return 1
end
redis.call('HSET', jk, 'Owner', '', 'UpdatedAt', now)
hset_pairs(jk, ARGV, 8)
if op == 'delay' then
  redis.call('HSET', jk, 'NextAttemptAt', now + delay)
  redis.call('ZADD', 'cb:delayed', now + delay, id)
elseif op == 'failed' then
  redis.call('PEXPIRE', jk, retention)
  schedule_reap(id, now + retention, j[2])
  redis.call('ZADD', 'cb:failed', now, id)
  redis.call('ZREMRANGEBYRANK', 'cb:failed', 0, -1001)
else
  push_callback(id, true)
end
return 1
