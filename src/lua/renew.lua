-- Extend the leases a processor still holds. ARGV: lease_ms, owner, then "<id>:<aggr>"
-- members. Returns the members whose lease is lost (expired and taken back).
local lease, owner = tonumber(ARGV[1]), ARGV[2]
local deadline = now_ms() + lease
local lost = {}
for i = 3, #ARGV do
  local m = ARGV[i]
  local id = split_member(m)
  if redis.call('ZSCORE', 'leases', m) and redis.call('HGET', 'job:' .. id, 'Owner') == owner then
    redis.call('ZADD', 'leases', 'XX', deadline, m)
  else
    lost[#lost + 1] = m
  end
end
return lost
