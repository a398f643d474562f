-- Shared helpers, prepended by store.c to every other script before loading it.
-- Key layout: docs/redis.md. Members of `leases` and `delayed` are "<id>:<aggr>"
-- (ids never contain ':'), so an aggregation's counters can be fixed even when the
-- job hash is gone.
local DEFAULT_LIMIT = 4
local WAKE = 'downloader:wake'

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
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

-- An aggregation's limit, in-flight and delayed counts and proxy, in one read.
local function aggr_state(a)
  local h = redis.call('HMGET', 'aggr:' .. a, 'limit', 'inflight', 'delayed', 'proxy')
  return limit_of(h[1]), tonumber(h[2]) or 0, tonumber(h[3]) or 0, h[4] or ''
end

-- An operator paused the aggregation (PATCH /aggregations/<a>): it stays out of
-- `ready` and is not forgotten when empty.
local function is_paused(a)
  return redis.call('HEXISTS', 'aggr:' .. a, 'paused') == 1
end

-- Puts an aggregation in the round-robin `ready` set when it has queued jobs (qlen)
-- and a free slot, and wakes idle processors when it was not there yet.
local function mark_ready(a, limit, inflight, qlen)
  if inflight >= limit or qlen == 0 then return end
  if redis.call('ZSCORE', 'ready', a) then return end
  if is_paused(a) then return end
  redis.call('ZADD', 'ready', redis.call('INCR', 'ready:seq'), a)
  redis.call('PUBLISH', WAKE, 'dl')
end

-- Forgets an aggregation that has nothing queued, delayed or in flight.
local function gc_aggr(a, inflight, delayed, qlen)
  if inflight > 0 or delayed > 0 or qlen > 0 then return end
  if is_paused(a) then return end
  redis.call('DEL', 'aggr:' .. a, 'bwp:' .. a)
  redis.call('SREM', 'aggrs', a)
  redis.call('ZREM', 'ready', a)
end

-- After an aggregation's counters or queue changed: ready again, or gone. qlen: its
-- queue length when the caller knows it.
local function settle_aggr(a, qlen)
  local limit, inflight, delayed = aggr_state(a)
  qlen = qlen or redis.call('LLEN', 'q:' .. a)
  mark_ready(a, limit, inflight, qlen)
  gc_aggr(a, inflight, delayed, qlen)
end

-- Bandwidth caps (issue 16): bwp:<aggr> counts each processor's running downloads of
-- an aggregation that has a `bandwidth`; its size is the number of processors sharing
-- the cap. A processor joining or leaving publishes 'bw' so that all re-divide it.
local function bw_claim(a, owner)
  local bw = redis.call('HGET', 'aggr:' .. a, 'bandwidth')
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
-- callback starts its retention instead. cb: its CallbackURL and CallbackDst as read.
local function route_finished(id, now, retention, cb, set)
  local jk = 'job:' .. id
  local callback = (cb[1] and cb[1] ~= '') or (cb[2] and cb[2] ~= '')
  if callback then
    for _, v in ipairs({'CallbackState', 'Pending', 'CallbackCount', 0, 'CallbackMeta', ''}) do
      set[#set + 1] = v
    end
  end
  redis.call('HSET', jk, unpack(set))
  -- failed for good: listed by GET /failed?kind=download (newest 1000)
  for i = 1, #set - 1, 2 do
    if set[i] == 'DownloadState' and set[i + 1] == 'Failed' then
      redis.call('ZADD', 'dl:failed', now, id)
      redis.call('ZREMRANGEBYRANK', 'dl:failed', 0, -1001)
    end
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

-- An aggregation as GET/PATCH /aggregations/<a> show it: {"ok", limit, rate, proxy,
-- paused (0/1), ready, delayed, inflight}. ak, qk: its aggr:<a> and q:<a> keys.
local function aggr_view(ak, qk)
  local h = redis.call('HMGET', ak, 'limit', 'rate', 'proxy', 'paused', 'delayed', 'inflight')
  return {'ok', limit_of(h[1]), h[2] or '0', h[3] or '', h[4] and 1 or 0, redis.call('LLEN', qk),
    tonumber(h[5]) or 0, tonumber(h[6]) or 0}
end
