-- Claim up to n downloads for one processor (round-robin over ready aggregations,
-- never more than an aggregation's limit in flight across all processors).
-- ARGV: lease_ms, n, owner, max_reclaims, retention_ms.
-- Also makes due delayed retries ready and returns expired leases to their queues.
-- Returns {claimed, next_delayed_due, next_lease_deadline, now}; each claimed entry is
-- {id, aggr, proxy, field, value, ...} (the job hash).
local lease, n, owner = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local max_reclaims, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()

for _, m in ipairs(redis.call('ZRANGEBYSCORE', 'delayed', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', 'delayed', m)
  local id, a = split_member(m)
  local ak = 'aggr:' .. a
  redis.call('ZREM', 'delayed:' .. a, id) -- the aggregation's index of its retries
  if redis.call('HINCRBY', ak, 'delayed', -1) < 0 then redis.call('HSET', ak, 'delayed', 0) end
  local qlen
  if redis.call('EXISTS', 'job:' .. id) == 1 then qlen = redis.call('RPUSH', 'q:' .. a, id) end
  settle_aggr(a, qlen)
end

for _, m in ipairs(redis.call('ZRANGEBYSCORE', 'leases', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', 'leases', m)
  local id, a = split_member(m)
  local jk = 'job:' .. id
  release_slot(a)
  redis.call('ZREM', 'running:' .. a, id) -- the aggregation's index of its downloads
  if redis.call('EXISTS', jk) == 1 then
    bw_release(a, redis.call('HGET', jk, 'Owner'))
    local lost = redis.call('HINCRBY', jk, 'LostLeases', 1)
    if lost > max_reclaims then
      route_finished(id, now, retention, redis.call('HMGET', jk, 'CallbackURL', 'CallbackDst'),
        {'DownloadState', 'Failed', 'Owner', '', 'UpdatedAt', now, 'DownloadMeta',
          'Error while performing request, lease lost ' .. lost ..
          ' times (processor crashed or stalled), retriable: false, internal: true'})
    else
      redis.call('HSET', jk, 'DownloadState', 'Pending', 'Owner', '', 'UpdatedAt', now)
      redis.call('LPUSH', 'q:' .. a, id)
    end
  end
  settle_aggr(a)
end

-- rotation sequence numbers for this call, reserved with one INCRBY when first needed
local max_turns = 4 * n + 64
local seq, seq_end = 0, -1
local function next_seq()
  if seq > seq_end then
    seq_end = redis.call('INCRBY', 'ready:seq', max_turns)
    seq = seq_end - max_turns + 1
  end
  seq = seq + 1
  return seq - 1
end

local out = {}
local guard = 0
while #out < n and guard < max_turns do
  guard = guard + 1
  local a = redis.call('ZRANGE', 'ready', 0, 0)[1]
  if not a then break end
  local ak = 'aggr:' .. a
  local limit, inflight, _, proxy = aggr_state(a)
  local id = nil
  if inflight < limit then id = redis.call('LPOP', 'q:' .. a) end
  if not id then
    redis.call('ZREM', 'ready', a)
  else
    local jk = 'job:' .. id
    local h = redis.call('HGETALL', jk)
    if #h > 0 then
      inflight = redis.call('HINCRBY', ak, 'inflight', 1)
      redis.call('ZADD', 'leases', now + lease, id .. ':' .. a)
      redis.call('ZADD', 'running:' .. a, now, id) -- the aggregation's index of its downloads
      redis.call('HSET', jk, 'DownloadState', 'InProgress', 'Owner', owner, 'UpdatedAt', now,
        'StartedAt', now)
      -- the hash as read, then the state just written (later pairs win when decoded)
      local e = {id, a, proxy}
      for _, v in ipairs(h) do e[#e + 1] = v end
      e[#e + 1] = 'DownloadState'
      e[#e + 1] = 'InProgress'
      local bw, procs = bw_claim(a, owner) -- bwp:<aggr>, see lib.lua
      if bw then
        e[#e + 1] = 'AggrBandwidth'
        e[#e + 1] = bw
        e[#e + 1] = 'AggrProcs'
        e[#e + 1] = tostring(procs)
      end
      out[#out + 1] = e
    end
    if inflight >= limit or redis.call('LLEN', 'q:' .. a) == 0 then
      redis.call('ZREM', 'ready', a)
    else
      redis.call('ZADD', 'ready', next_seq(), a)
    end
  end
end
return {out, head_score('delayed'), head_score('leases'), now}
