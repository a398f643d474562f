-- Benchmark 4: creates N jobs whose download succeeded and whose callback is ready,
-- exactly as dl_finish.lua leaves them (docs/redis.md): job hash with DownloadState
-- Success, DownloadURL, StoreKey, CallbackState Pending, and the id RPUSHed to cb:q.
-- ARGV: N, PREFIX (5 characters: ids are PREFIX .. 9 digits = 14 characters),
--       KIND ("http": CallbackURL = DST; "kafka": CallbackType kafka, CallbackDst = DST),
--       DST, DOWNLOAD_URL.          Returns N.
local n, prefix, kind, dst, dlurl = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, n do
  local id = string.format('%s%09d', prefix, i)
  local jk = 'job:' .. id
  redis.call('HSET', jk, 'ID', id, 'URL', 'http://127.0.0.1:1/origin/' .. i, 'AggrID', 'bench',
    'DownloadState', 'Success', 'DownloadCount', 1, 'ResponseCode', 200,
    'DownloadURL', dlurl, 'StoreKey', 'reap:' .. dlurl, 'MimeDetected', 'application/octet-stream',
    'Size', 4096, 'Extra', 'bench-' .. i, 'CallbackState', 'Pending', 'CallbackCount', 0,
    'CreatedAt', now, 'UpdatedAt', now, 'StartedAt', now)
  if kind == 'kafka' then
    redis.call('HSET', jk, 'CallbackType', 'kafka', 'CallbackDst', dst)
  else
    redis.call('HSET', jk, 'CallbackURL', dst)
  end
  redis.call('RPUSH', 'cb:q', id)
end
return n
