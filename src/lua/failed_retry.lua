-- POST /failed/retry: re-queue callbacks that failed for good. KEYS: cb:failed.
-- ARGV: ids (none: every entry of cb:failed, at most 1000 by its bound).
-- Returns the number re-queued. (job:<id> and a reap queue derive from each id and its
-- hash, in retry_callback.)
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', KEYS[1], 0, -1) end
local n = 0
for _, id in ipairs(ids) do
  if retry_callback(id) == 'queued' then n = n + 1 end
end
return n
