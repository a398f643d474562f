-- Enqueue one job (API). KEYS: none, or the Idempotency-Key's record `idem:<key>`.
-- ARGV: id, aggr, limit, proxy_given ("0"/"1"), proxy, rate (starts per second, 0 =
-- none), with KEYS[1] then the body's digest and the record's TTL (ms), then job hash
-- field/value pairs. Returns 1, or 0 when the id is taken; with KEYS[1] already
-- recorded, {'replay', id} (same digest) or {'mismatch', id} (another), and nothing is
-- created. A retry after a timed-out answer finds the record, whichever of the two
-- Redis ran first.
local id, a = ARGV[1], ARGV[2]
local ik, fields = KEYS[1], 7
if ik then
  fields = 9
  -- one command reads a recorded key and records a new one (SET NX GET, Redis 7.0): the
  -- record is written with the job, so a job exists exactly when its key's record does
  local rec = redis.call('SET', ik, ARGV[7] .. ':' .. id, 'NX', 'GET', 'PX', ARGV[8])
  if rec then -- "<digest>:<id>"
    local sep = string.find(rec, ':', 1, true)
    local first = string.sub(rec, sep + 1)
    if string.sub(rec, 1, sep - 1) == ARGV[7] then return {'replay', first} end
    return {'mismatch', first}
  end
end
local jk = 'job:' .. id
local now = now_ms()
-- CreatedAt is always set, so HSETNX doubles as the existence check
if redis.call('HSETNX', jk, 'CreatedAt', now) == 0 then
  if ik then redis.call('DEL', ik) end -- recorded above for an id that is taken
  return 0
end
redis.call('HSET', jk, 'UpdatedAt', now, unpack(ARGV, fields))
local ak = 'aggr:' .. a
local new_aggr
if ARGV[4] == '1' then
  new_aggr = redis.call('HSET', ak, 'limit', ARGV[3], 'rate', ARGV[6], 'proxy', ARGV[5])
else
  new_aggr = redis.call('HSET', ak, 'limit', ARGV[3], 'rate', ARGV[6])
end
-- only enqueue sets `limit`, together with the `aggrs` entry (gc removes both): a new
-- field means an aggregation that is not listed yet. gc may have kept such a hash,
-- without `limit`, with a TTL while a pause or rate wait held: it is live again.
if new_aggr > 0 then
  redis.call('PERSIST', ak)
  redis.call('SADD', 'aggrs', a)
end
-- aggr_bandwidth comes as a job field but belongs to the aggregation (a later job that
-- gives one replaces it, like the limit)
local bw = redis.call('HGET', jk, 'AggrBandwidth')
if bw then
  redis.call('HSET', ak, 'bandwidth', bw)
  redis.call('HDEL', jk, 'AggrBandwidth')
end
local qlen = redis.call('RPUSH', 'q:' .. a, id)
mark_ready(a, aggr_state(a), qlen)
return 1
