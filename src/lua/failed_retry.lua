-- POST /failed/retry: re-queue downloads (KEYS: dl:failed) or callbacks (KEYS:
-- cb:failed) that failed for good. ARGV: kind ("download"/"callback"), then ids (none:
-- every entry of the list, at most 1000 by its bound). Returns the number re-queued;
-- unknown ids and jobs not failed of that kind are skipped. (job:<id>, and the
-- aggregation's or reap queue's keys, derive from each id and its hash, in
-- retry_download and retry_callback of lib.lua.)
local retry = retry_callback
if ARGV[1] == 'download' then retry = retry_download end
local ids = {unpack(ARGV, 2)}
if #ids == 0 then ids = redis.call('ZRANGE', KEYS[1], 0, -1) end
local n = 0
for _, id in ipairs(ids) do
  if retry(id) == 'queued' then n = n + 1 end
end
return n
