-- Confirm file deletions. KEYS: reap queue. ARGV: lease deadline, ids...
-- Entries re-scheduled since the lease (another score) are kept.
local n = 0
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
