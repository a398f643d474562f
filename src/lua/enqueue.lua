-- Enqueue one job (API). ARGV: id, aggr, limit, proxy_given ("0"/"1"), proxy,
-- then job hash field/value pairs. Returns 1, or 0 when the id is taken.
local id, a = ARGV[1], ARGV[2]
local jk = 'job:' .. id
if redis.call('EXISTS', jk) == 1 then return 0 end
local now = now_ms()
redis.call('HSET', jk, 'CreatedAt', now, 'UpdatedAt', now)
hset_pairs(jk, ARGV, 6)
local ak = 'aggr:' .. a
redis.call('HSET', ak, 'limit', ARGV[3])
if ARGV[4] == '1' then
  redis.call('HSET', ak, 'proxy', ARGV[5])
end
redis.call('SADD', 'aggrs', a)
redis.call('RPUSH', 'q:' .. a, id)
mark_ready(a)
return 1
