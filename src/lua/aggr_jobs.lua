-- GET /aggregations/<a>/jobs: one page of an aggregation's jobs. KEYS: q:<a>,
-- delayed:<a>, running:<a>. ARGV: state ("ready", "delayed", "running"), offset, count.
-- O(offset/node size + count): LRANGE / ZRANGE by rank, one HMGET per job (job:<id>
-- derives from the listed ids). Returns {next_cursor ("" on the last page), {{id,
-- url, attempts, next_attempt_at, created_at, started_at, state, last_error}, ...}}.
local state, off, count = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ids, scores, total = {}, {}, 0
if state == 'ready' then
  total = redis.call('LLEN', KEYS[1])
  ids = redis.call('LRANGE', KEYS[1], off, off + count - 1)
else
  local k = state == 'delayed' and KEYS[2] or KEYS[3]
  total = redis.call('ZCARD', k)
  local r = redis.call('ZRANGE', k, off, off + count - 1, 'WITHSCORES')
  for i = 1, #r, 2 do
    ids[#ids + 1] = r[i]
    scores[#scores + 1] = r[i + 1]
  end
end
local out = {}
for i, id in ipairs(ids) do
  local h = redis.call('HMGET', 'job:' .. id, 'URL', 'DownloadCount', 'NextAttemptAt',
    'CreatedAt', 'StartedAt', 'DownloadState', 'LastError')
  local next_at = h[3] or ''
  if state == 'delayed' then next_at = scores[i] end
  out[#out + 1] = {id, h[1] or '', h[2] or '0', next_at, h[4] or '0', h[5] or '0', h[6] or '',
    h[7] or ''}
end
local nxt = ''
if off + count < total then nxt = tostring(off + count) end
return {nxt, out}
