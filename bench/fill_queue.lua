-- Benchmark 6: fills q:<aggr> (KEYS[1]) with jobs ARGV[2]..ARGV[3] of aggregation
-- ARGV[1] (job hashes shaped like enqueue.lua's; ids 14 characters), without HTTP.
local a = ARGV[1]
for i = tonumber(ARGV[2]), tonumber(ARGV[3]) do
  local id = string.format('F%013d', i)
  redis.call('HSET', 'job:' .. id, 'ID', id, 'URL', 'http://127.0.0.1/files/f' .. i,
    'AggrID', a, 'DownloadState', 'Pending', 'CreatedAt', 1, 'UpdatedAt', 1)
  redis.call('RPUSH', KEYS[1], id)
end
return 1
