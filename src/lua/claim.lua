-- Claim up to n downloads for one processor (round-robin over ready aggregations,
-- never more than an aggregation's limit in flight across all processors).
-- ARGV: lease_ms, n, owner, max_reclaims, retention_ms.
-- Also makes due delayed retries ready, returns expired leases to their queues, and
-- moves aggregations whose pause or rate wait is over from `throttled` to `ready`.
-- Returns {claimed, next_delayed_due, next_lease_deadline, now, next_throttled,
-- rate_waits, ready_left}; each claimed entry is {id, aggr, proxy, field, value, ...}
-- (the job hash); rate_waits: starts this call left waiting for their aggregation's
-- rate; ready_left: aggregations still in `ready` (0: nothing to claim until a wake-up,
-- since every script that puts one there publishes, or a timer).
local lease, n, owner = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local max_reclaims, retention = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()

-- due throttled aggregations back to `ready`, without a wake-up: this claim takes them
-- (other processors are woken at the end if it cannot take them all)
local unwoken = false
for _, a in ipairs(redis.call('ZRANGEBYSCORE', 'throttled', '-inf', now, 'LIMIT', 0, 500)) do
  redis.call('ZREM', 'throttled', a)
  unwoken = settle_aggr(a, nil, true) or unwoken
end

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
          ' times (processor crashed or stalled), retriable: false, internal: true'}, a)
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
local guard, rate_waits = 0, 0
while #out < n and guard < max_turns do
  guard = guard + 1
  local a = redis.call('ZRANGE', 'ready', 0, 0)[1]
  if not a then break end
  local ak = 'aggr:' .. a
  local st = aggr_state(a)
  local gate = gate_of(st)
  local id = nil
  if gate <= now and st.inflight < st.eff then id = redis.call('LPOP', 'q:' .. a) end
  if not id then
    if gate > now then park(a, gate, false) else redis.call('ZREM', 'ready', a) end
  else
    local jk = 'job:' .. id
    local h = redis.call('HGETALL', jk)
    if #h > 0 then
      st.inflight = redis.call('HINCRBY', ak, 'inflight', 1)
      redis.call('ZADD', 'leases', now + lease, id .. ':' .. a)
      redis.call('ZADD', 'running:' .. a, now, id) -- the aggregation's index of its downloads
      redis.call('HSET', jk, 'DownloadState', 'InProgress', 'Owner', owner, 'UpdatedAt', now,
        'StartedAt', now)
      if st.rate > 0 then
        -- Starts on a grid 1/rate apart, no credit for idle time (no burst). A start that
        -- came late by at most `tol` (the wake-up timer's and the scheduler's delay)
        -- keeps the grid: lateness must not add up and lower the rate.
        local iv = 1000 / st.rate
        local tol = math.min(RATE_TOLERANCE_MS, iv / 4)
        st.next_start = math.max(now - tol, st.next_start) + iv
        redis.call('HSET', ak, 'next_start', string.format('%.3f', st.next_start))
      end
      -- the hash as read, then the state just written (later pairs win when decoded)
      local e = {id, a, st.proxy}
      for _, v in ipairs(h) do e[#e + 1] = v end
      e[#e + 1] = 'DownloadState'
      e[#e + 1] = 'InProgress'
      local bw, procs = bw_claim(a, owner, st.bandwidth) -- bwp:<aggr>, see lib.lua
      if bw then
        e[#e + 1] = 'AggrBandwidth'
        e[#e + 1] = bw
        e[#e + 1] = 'AggrProcs'
        e[#e + 1] = tostring(procs)
      end
      out[#out + 1] = e
    end
    if st.inflight >= st.eff or redis.call('LLEN', 'q:' .. a) == 0 then
      redis.call('ZREM', 'ready', a)
    elseif gate_of(st) > now then
      rate_waits = rate_waits + 1
      -- the caller learns the head from the reply; others only when it may be full
      park(a, gate_of(st), #out >= n)
    else
      redis.call('ZADD', 'ready', next_seq(), a)
    end
  end
end
local ready_left = redis.call('ZCARD', 'ready')
if unwoken and ready_left > 0 then redis.call('PUBLISH', WAKE, 'dl') end
-- the throttled head rounded up: the processor's timer must not fire before it
local th = tonumber(head_score('throttled'))
return {out, head_score('delayed'), head_score('leases'), now, th and math.ceil(th) or 0, rate_waits,
  ready_left}
