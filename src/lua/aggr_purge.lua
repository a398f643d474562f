-- DELETE /aggregations/<a>/jobs: one chunk of a purge (the api calls it until nothing
-- is left, so Redis is never blocked for long). KEYS: q:<a>, delayed:<a>, aggr:<a>.
-- ARGV: aggregation id, chunk size. Deletes up to `chunk` queued jobs, then delayed
-- ones, with their job hashes (job:<id> and the `delayed` member derive from the
-- popped ids). Running jobs finish. Returns {deleted, left (queued + delayed)}.
local a, chunk = ARGV[1], tonumber(ARGV[2])
local ids = redis.call('LPOP', KEYS[1], chunk) or {}
for _, id in ipairs(ids) do redis.call('DEL', 'job:' .. id) end
local n = #ids
if n < chunk then
  local r = redis.call('ZPOPMIN', KEYS[2], chunk - n)
  local d = 0
  for i = 1, #r, 2 do
    redis.call('ZREM', 'delayed', r[i] .. ':' .. a)
    redis.call('DEL', 'job:' .. r[i])
    d = d + 1
  end
  if d > 0 and redis.call('HINCRBY', KEYS[3], 'delayed', -d) < 0 then
    redis.call('HSET', KEYS[3], 'delayed', 0)
  end
  n = n + d
end
local left = redis.call('LLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2])
-- settle_aggr (lib.lua) derives the aggregation's keys from its id, as for every script
if n > 0 then settle_aggr(a, redis.call('LLEN', KEYS[1])) end
return {n, left}
