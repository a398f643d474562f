-- Lease due file deletions of one store. KEYS: reap queue, the owner's held entries
-- (live:reap:<owner>, hash "<id>:<queue>" -> lease deadline, read by live.lua when the
-- owner dies). ARGV: lease_ms, n.
-- A leased entry stays in the queue with its score moved to the lease deadline, so a
-- deletion that is never confirmed comes back. Returns {ids, deadline, next_due}.
local lease, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], now + lease, id)
  redis.call('HSET', KEYS[2], id .. ':' .. KEYS[1], now + lease)
end
-- every entry of the hash ends its lease by now + lease at the latest
if #ids > 0 then redis.call('PEXPIRE', KEYS[2], lease) end
return {ids, now + lease, head_score(KEYS[1])}
