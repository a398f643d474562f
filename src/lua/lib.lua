-- Shared helpers, prepended by store.c to every other script before loading it.
-- Key layout: docs/redis.md. Members of `leases` and `delayed` are "<id>:<aggr>"
-- (ids never contain ':'), so an aggregation's counters can be fixed even when the
-- job hash is gone.
local DEFAULT_LIMIT = 4
-- lateness of a rate-limited start that the next start may make up (claim.lua)
local RATE_TOLERANCE_MS = 5
local WAKE = 'downloader:wake'

-- Redis' clock, read once per script run (a script runs atomically: one instant).
local clock_ms
local function now_ms()
  if not clock_ms then
    local t = redis.call('TIME')
    clock_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock_ms
end

local function split_member(m)
  local i = string.find(m, ':', 1, true)
  return string.sub(m, 1, i - 1), string.sub(m, i + 1)
end

local function limit_of(v)
  local l = tonumber(v)
  if not l or l < 1 then return DEFAULT_LIMIT end
  return l
end

-- An aggregation's state in one read: limit, inflight, delayed, proxy, rate (starts
-- per second, 0 = none), next_start (ms: the earliest start the rate allows), paused
-- (ms: paused until, after a 429/503), streak (429/503 in a row), eff (the effective
-- concurrency: the limit, or less after origin pushback), ok (successes since eff last
-- changed), pushed (when the latest pushback was applied), held (an operator paused it
-- with PATCH /aggregations/<a>: it stays out of `ready` and `throttled` and is not
-- forgotten when empty).
local function aggr_state(a)
  local h = redis.call('HMGET', 'aggr:' .. a, 'limit', 'inflight', 'delayed', 'proxy', 'rate',
    'next_start', 'paused_until', 'pause_streak', 'effective', 'ok_streak', 'pushed_at',
    'paused', 'bandwidth')
  local st = {limit = limit_of(h[1]), inflight = tonumber(h[2]) or 0,
    delayed = tonumber(h[3]) or 0, proxy = h[4] or '', rate = tonumber(h[5]) or 0,
    next_start = tonumber(h[6]) or 0, paused = tonumber(h[7]) or 0,
    streak = tonumber(h[8]) or 0, ok = tonumber(h[10]) or 0, pushed = tonumber(h[11]) or 0,
    held = h[12] ~= false, bandwidth = h[13] or nil}
  local eff = tonumber(h[9])
  if not eff or eff > st.limit then eff = st.limit end
  st.eff = eff
  return st
end

-- When the aggregation may start its next download: the end of a pause, or the next
-- start its rate allows (0: now).
local function gate_of(st)
  local g = st.paused
  if st.rate > 0 and st.next_start > g then g = st.next_start end
  return g
end

-- Parks an aggregation that has work and a free slot but must wait (pause or rate) in
-- `throttled`, scored by when it becomes claimable; claim.lua moves it back to `ready`
-- then. wake: publish a wake-up when it became the earliest entry, so that an idle
-- processor re-arms its timer.
local function park(a, gate, wake)
  redis.call('ZREM', 'ready', a)
  local was = tonumber(redis.call('ZSCORE', 'throttled', a))
  if was and math.abs(was - gate) < 0.001 then return end -- parked already (a finish)
  redis.call('ZADD', 'throttled', gate, a)
  if wake and redis.call('ZRANGE', 'throttled', 0, 0)[1] == a then
    redis.call('PUBLISH', WAKE, 'dl')
  end
end

-- Puts an aggregation in the round-robin `ready` set when it has queued jobs (qlen),
-- a free slot under its effective limit and no pause or rate wait (otherwise parks it
-- in `throttled`), and wakes idle processors when it was not there yet (unless quiet:
-- the caller is a claim that takes it itself). Returns true when it added it.
local function mark_ready(a, st, qlen, quiet)
  if st.held or st.inflight >= st.eff or qlen == 0 then return false end
  local gate = gate_of(st)
  if gate > now_ms() then
    park(a, gate, true)
    return false
  end
  if redis.call('ZSCORE', 'ready', a) then return false end
  redis.call('ZREM', 'throttled', a)
  redis.call('ZADD', 'ready', redis.call('INCR', 'ready:seq'), a)
  if not quiet then redis.call('PUBLISH', WAKE, 'dl') end
  return true
end

-- Forgets an aggregation that has nothing queued, delayed or in flight. While a pause
-- or the rate still holds, its hash stays (unlisted, limit removed so that enqueue
-- sees a new aggregation) until then, so a job enqueued meanwhile still waits.
local function gc_aggr(a, st, qlen)
  if st.held or st.inflight > 0 or st.delayed > 0 or qlen > 0 then return end
  local gate = gate_of(st)
  if gate > now_ms() then
    redis.call('HDEL', 'aggr:' .. a, 'limit', 'bandwidth')
    redis.call('PEXPIREAT', 'aggr:' .. a, math.ceil(gate))
    redis.call('DEL', 'bwp:' .. a)
  else
    redis.call('DEL', 'aggr:' .. a, 'bwp:' .. a)
  end
  redis.call('SREM', 'aggrs', a)
  redis.call('ZREM', 'ready', a)
  redis.call('ZREM', 'throttled', a)
end

-- After an aggregation's counters or queue changed: ready again, or gone. st: its
-- state as now stored; qlen: its queue length when the caller knows it; quiet: see
-- mark_ready. Returns true when it went to `ready`.
local function settle_state(a, st, qlen, quiet)
  qlen = qlen or redis.call('LLEN', 'q:' .. a)
  local added = mark_ready(a, st, qlen, quiet)
  gc_aggr(a, st, qlen)
  return added
end

-- settle_state with the state read afresh.
local function settle_aggr(a, qlen, quiet)
  return settle_state(a, aggr_state(a), qlen, quiet)
end

-- What the dashboard and job status show of an aggregation's throttling: {rate,
-- effective limit, paused until (0 when not paused), waiting ("pause", "rate" or "")}.
local function throttle_view(st, qlen)
  local now = now_ms()
  local paused = st.paused > now and math.ceil(st.paused) or 0
  local waiting = ''
  if paused > 0 then
    waiting = 'pause'
  elseif st.rate > 0 and st.next_start > now and qlen > 0 and st.inflight < st.eff then
    waiting = 'rate'
  end
  return {tostring(st.rate), st.eff, paused, waiting}
end

-- Bandwidth caps (issue 16): bwp:<aggr> counts each processor's running downloads of
-- an aggregation that has a `bandwidth`; its size is the number of processors sharing
-- the cap. A processor joining or leaving publishes 'bw' so that all re-divide it.
-- bw: the aggregation's `bandwidth` as aggr_state read it (nil: no cap).
local function bw_claim(a, owner, bw)
  if not bw then return nil, 0 end
  local k = 'bwp:' .. a
  if redis.call('HINCRBY', k, owner, 1) == 1 then redis.call('PUBLISH', WAKE, 'bw') end
  return bw, redis.call('HLEN', k)
end

local function bw_release(a, owner)
  local k = 'bwp:' .. a
  if not owner or owner == '' or redis.call('HEXISTS', k, owner) == 0 then return end
  if redis.call('HINCRBY', k, owner, -1) <= 0 then
    redis.call('HDEL', k, owner)
    redis.call('PUBLISH', WAKE, 'bw')
  end
end

local function release_slot(a)
  local k = 'aggr:' .. a
  if redis.call('HINCRBY', k, 'inflight', -1) < 0 then redis.call('HSET', k, 'inflight', 0) end
end

-- Schedules deletion of a job's stored file in its store's reap queue. sk: the job's
-- StoreKey when the caller has read it.
local function schedule_reap(id, due, sk)
  sk = sk or redis.call('HGET', 'job:' .. id, 'StoreKey')
  if not sk or sk == '' then return end
  redis.call('ZADD', sk, due, id)
  local head = redis.call('ZRANGE', sk, 0, 0)
  if head[1] == id then redis.call('PUBLISH', WAKE, 'reap') end
end

local function push_callback(id, front)
  local n
  if front then n = redis.call('LPUSH', 'cb:q', id) else n = redis.call('RPUSH', 'cb:q', id) end
  if n == 1 then redis.call('PUBLISH', WAKE, 'cb') end
end

-- A download reached Success or Failed: writes `set` (field/value pairs) to the job
-- together with a pending callback state, and queues the callback; a job without a
-- callback starts its retention instead. cb: its CallbackURL and CallbackDst as read;
-- a: its aggregation.
local function route_finished(id, now, retention, cb, set, a)
  local jk = 'job:' .. id
  local callback = (cb[1] and cb[1] ~= '') or (cb[2] and cb[2] ~= '')
  if callback then
    for _, v in ipairs({'CallbackState', 'Pending', 'CallbackCount', 0, 'CallbackMeta', ''}) do
      set[#set + 1] = v
    end
  end
  local failed = false
  for i = 1, #set - 1, 2 do
    if set[i] == 'DownloadState' and set[i + 1] == 'Failed' then failed = true end
  end
  if failed then
    -- the aggregation's settings go with the failure: a retry (retry_download) revives
    -- the aggregation with them if it has been forgotten meanwhile
    local ag = redis.call('HMGET', 'aggr:' .. a, 'limit', 'rate', 'proxy', 'bandwidth')
    set[#set + 1] = 'AggrSettings'
    set[#set + 1] = cjson.encode({ag[1] or '', ag[2] or '', ag[3] or '', ag[4] or ''})
  end
  redis.call('HSET', jk, unpack(set))
  if failed then
    -- failed for good: listed by GET /failed?kind=download (newest 1000)
    redis.call('ZADD', 'dl:failed', now, id)
    redis.call('ZREMRANGEBYRANK', 'dl:failed', 0, -1001)
  end
  if callback then
    push_callback(id, false)
  else
    redis.call('PEXPIRE', jk, retention)
    schedule_reap(id, now + retention)
  end
end

local function hset_pairs(key, argv, first)
  if #argv >= first + 1 then redis.call('HSET', key, unpack(argv, first)) end
end

local function head_score(key)
  local r = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return r[2] or ''
end

-- Re-queues a job's callback that failed for good (POST /retry/<id>, POST
-- /failed/retry). Returns 'notfound' (no job, or delivered: the reference has deleted
-- it by then), 'state' (callback not Failed), 'queued', or 'none' (no callback target).
local function retry_callback(id)
  local jk = 'job:' .. id
  local st = redis.call('HMGET', jk, 'ID', 'CallbackState')
  if not st[1] and redis.call('EXISTS', jk) == 0 then return 'notfound' end
  if st[2] == 'Delivered' then return 'notfound' end
  if st[2] ~= 'Failed' then return 'state' end
  redis.call('HSET', jk, 'CallbackMeta', '', 'CallbackCount', 0, 'UpdatedAt', now_ms())
  local cb = redis.call('HMGET', jk, 'CallbackURL', 'CallbackDst', 'StoreKey')
  if (cb[1] and cb[1] ~= '') or (cb[2] and cb[2] ~= '') then
    redis.call('HSET', jk, 'CallbackState', 'Pending')
    redis.call('PERSIST', jk)
    if cb[3] and cb[3] ~= '' then redis.call('ZREM', cb[3], id) end
    redis.call('ZREM', 'cb:failed', id)
    push_callback(id, false)
    return 'queued'
  end
  return 'none'
end

-- Drops what a finished download left queued or listed: its callback (queued, delayed
-- or failed for good) and its dl:failed entry (cancel.lua, retry_download).
local function drop_finished(id)
  redis.call('LREM', 'cb:q', 1, id)
  redis.call('ZREM', 'cb:delayed', id)
  redis.call('ZREM', 'cb:failed', id)
  redis.call('ZREM', 'dl:failed', id)
end

-- Fields of a download's outcome and of its callback, removed when a failed download
-- starts over (a missing field is its zero value).
local OUTCOME_FIELDS = {'DownloadCount', 'DownloadMeta', 'LastError', 'ResponseCode',
  'DownloadURL', 'LostLeases', 'NextAttemptAt', 'StartedAt', 'Owner', 'KeptBytes', 'ImageSize',
  'MimeDetected', 'Size', 'Sha256', 'StoreKey', 'CallbackState', 'CallbackCount',
  'CallbackMeta', 'DeliveredAt', 'AggrSettings'}

-- Re-queues a job whose download failed for good (POST /failed/retry, kind download) as
-- a new job: its failure callback is dropped unless already sent (the client gets the
-- new attempt's callback), the outcome and attempt counts are cleared (a full retry
-- budget), the retention or history TTL is removed, and the job goes to the end of its
-- aggregation's queue. An aggregation forgotten meanwhile is revived with the settings
-- recorded at the failure (route_finished), as enqueue.lua creates one. Returns
-- 'notfound', 'state' (not Failed, or its callback is being sent right now) or 'queued'.
local function retry_download(id)
  local jk = 'job:' .. id
  local h = redis.call('HMGET', jk, 'AggrID', 'DownloadState', 'CallbackState', 'StoreKey',
    'AggrSettings')
  if not h[1] then return 'notfound' end -- AggrID is written with every job
  if h[2] ~= 'Failed' or h[3] == 'InProgress' then return 'state' end
  local a = h[1]
  drop_finished(id)
  if h[4] and h[4] ~= '' then redis.call('ZREM', h[4], id) end -- its reap queue
  redis.call('HDEL', jk, unpack(OUTCOME_FIELDS))
  redis.call('HSET', jk, 'DownloadState', 'Pending', 'UpdatedAt', now_ms())
  redis.call('PERSIST', jk)
  -- the aggregation's keys derive from the job's AggrID
  local ak = 'aggr:' .. a
  if redis.call('HEXISTS', ak, 'limit') == 0 then
    -- forgotten by gc_aggr (a hash kept without `limit` while a wait held is live again)
    local ok, s = pcall(cjson.decode, h[5] or '')
    if not ok or type(s) ~= 'table' then s = {} end
    local set = {'limit', limit_of(s[1]), 'rate', tonumber(s[2]) or 0}
    if s[3] and s[3] ~= '' then set[#set + 1] = 'proxy'; set[#set + 1] = s[3] end
    if s[4] and s[4] ~= '' then set[#set + 1] = 'bandwidth'; set[#set + 1] = s[4] end
    redis.call('HSET', ak, unpack(set))
    redis.call('PERSIST', ak)
    redis.call('SADD', 'aggrs', a)
  end
  settle_aggr(a, redis.call('RPUSH', 'q:' .. a, id))
  return 'queued'
end

-- An aggregation as GET/PATCH /aggregations/<a> show it: {"ok", limit, rate, proxy,
-- paused (0/1), ready, delayed, inflight}. ak, qk: its aggr:<a> and q:<a> keys.
local function aggr_view(ak, qk)
  local h = redis.call('HMGET', ak, 'limit', 'rate', 'proxy', 'paused', 'delayed', 'inflight')
  return {'ok', limit_of(h[1]), h[2] or '0', h[3] or '', h[4] and 1 or 0, redis.call('LLEN', qk),
    tonumber(h[5]) or 0, tonumber(h[6]) or 0}
end
