-- Claim up to n callbacks for one notifier. ARGV: lease_ms, n, owner.
-- Makes due delayed callbacks ready and takes back expired callback leases first.
-- Returns {claimed, next_delayed_due, next_lease_deadline, now}; each claimed entry is
-- the job hash as field/value pairs.
local lease, n, owner = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now = now_ms()
for _, id in ipairs(redis.call('ZRANGEBYSCORE', 'cb:delayed', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', 'cb:delayed', id)
  if redis.call('EXISTS', 'job:' .. id) == 1 then redis.call('RPUSH', 'cb:q', id) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', 'cb:leases', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', 'cb:leases', id)
  if redis.call('EXISTS', 'job:' .. id) == 1 then
    redis.call('HSET', 'job:' .. id, 'CallbackState', 'Pending', 'Owner', '', 'UpdatedAt', now)
    redis.call('LPUSH', 'cb:q', id)
  end
end
local out = {}
while #out < n do
  local id = redis.call('LPOP', 'cb:q')
  if not id then break end
  local jk = 'job:' .. id
  local h = redis.call('HGETALL', jk)
  if #h > 0 then
    redis.call('HSET', jk, 'CallbackState', 'InProgress', 'Owner', owner, 'UpdatedAt', now)
    redis.call('ZADD', 'cb:leases', now + lease, id)
    -- the hash as read, then the state just written (later pairs win when decoded)
    h[#h + 1] = 'CallbackState'
    h[#h + 1] = 'InProgress'
    out[#out + 1] = h
  end
end
return {out, head_score('cb:delayed'), head_score('cb:leases'), now}
