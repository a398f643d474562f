-- Extend callback leases still held. ARGV: lease_ms, owner, ids... Returns lost ids.
local lease, owner = tonumber(ARGV[1]), ARGV[2]
local deadline = now_ms() + lease
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', 'cb:leases', id) and redis.call('HGET', 'job:' .. id, 'Owner') == owner then
    redis.call('ZADD', 'cb:leases', 'XX', deadline, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
