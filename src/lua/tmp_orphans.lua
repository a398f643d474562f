-- The processor's periodic sweep of partial files (<storage_dir>/<id>.tmp kept for a
-- resume on its host): which of these jobs can no longer come back to resume one?
-- KEYS: job:<id> of each file's id (a few hundred at most); ARGV: the same ids, in the
-- same order. A job can come back while its hash exists with DownloadState Pending
-- (queued, or delayed for a retry) or InProgress (running, here or elsewhere: it may
-- fail and be retried on this host, or it is another processor's on this host sharing
-- storage_dir); so can one in any state this script does not know. Returns the other
-- ids, in order: no hash (purged, expired, deleted), Success, Failed, Cancelled.
local gone = {}
for i, jk in ipairs(KEYS) do
  local id = ARGV[i]
  local s = redis.call('HGET', jk, 'DownloadState')
  if s == 'Success' or s == 'Failed' or s == 'Cancelled'
      or (not s and redis.call('EXISTS', jk) == 0) then
    gone[#gone + 1] = id
  end
end
return gone
