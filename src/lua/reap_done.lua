-- Confirm file deletions. KEYS: reap queue, the owner's held entries (see
-- reap_claim.lua). ARGV: lease deadline, ids...
-- Entries re-scheduled since the lease (another score) are kept.
local n = 0
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i] .. ':' .. KEYS[1])
  if s and tonumber(s) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
