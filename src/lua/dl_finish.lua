-- Apply the outcome of a download attempt, only while the caller still holds the lease.
-- ARGV: id, aggr, owner, op, delay_ms, retention_ms, signal, retry_after_ms,
-- max_pause_ms, adaptive ("1"/"0"), then job field/value pairs.
-- op: "done" (Success/Failed: callback or retention), "delay" (retry later),
-- "requeue" (back to the front of the queue at once). signal: what the attempt says
-- about the origin: "ok" (success), "429"/"503" (pushback: pause the aggregation,
-- Retry-After in retry_after_ms or else 1 s doubling to 60 s), "timeout", or "".
-- Returns 1, 0 if the lease is lost, or 2 if the job was cancelled meanwhile
-- (DELETE /download/<id>): a file this attempt stored (StoreKey among the pairs) is then
-- queued for deletion at once.
local id, a, owner, op = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local delay, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local signal, retry_after, max_pause = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local adaptive = ARGV[10] == '1'
local jk, m = 'job:' .. id, ARGV[1] .. ':' .. ARGV[2]
local j = redis.call('HMGET', jk, 'Owner', 'CallbackURL', 'CallbackDst', 'StartedAt',
  'DownloadState')
if j[5] == 'Cancelled' then
  for i = 11, #ARGV - 1, 2 do
    if ARGV[i] == 'StoreKey' then schedule_reap(id, now_ms(), ARGV[i + 1]) end
  end
  return 2
end
if j[1] ~= owner or redis.call('ZREM', 'leases', m) == 0 then return 0 end
local now = now_ms()
release_slot(a)
bw_release(a, owner)
redis.call('ZREM', 'running:' .. a, id) -- the aggregation's index of its downloads

-- Origin back-pressure and AIMD. Only attempts started after the latest pushback was
-- applied count: the answers to requests already running then belong to that episode
-- (a burst of 503s pauses and halves once). st is kept as written, for settle_state.
local st = aggr_state(a)
local fresh = (tonumber(j[4]) or 0) >= st.pushed
local upd = {}
local function put(field, v)
  upd[#upd + 1] = field
  upd[#upd + 1] = v
end
if fresh and (signal == '429' or signal == '503' or signal == 'timeout') then
  put('pushed_at', now)
  put('ok_streak', 0)
  if adaptive then
    st.eff = math.max(1, math.floor(st.eff / 2))
    put('effective', st.eff)
  end
  if signal ~= 'timeout' then
    local pause = retry_after
    if pause <= 0 then pause = math.min(1000 * 2 ^ st.streak, 60000) end
    st.paused = math.max(st.paused, now + math.min(pause, max_pause))
    put('pause_streak', st.streak + 1)
    put('paused_until', st.paused)
  end
elseif signal == '429' or signal == '503' then
  -- same episode: a later Retry-After may still lengthen the pause
  if retry_after > 0 and now + math.min(retry_after, max_pause) > st.paused then
    st.paused = now + math.min(retry_after, max_pause)
    put('paused_until', st.paused)
  end
elseif fresh and signal == 'ok' then
  if st.streak > 0 then put('pause_streak', 0) end
  if adaptive and st.eff < st.limit then
    local ok = st.ok + 1
    if ok >= st.eff then
      -- additive increase; back at the limit, `effective` is dropped (follows the limit)
      ok = 0
      st.eff = st.eff + 1
      if st.eff >= st.limit then
        redis.call('HDEL', 'aggr:' .. a, 'effective')
      else
        put('effective', st.eff)
      end
    end
    put('ok_streak', ok)
  end
end
if #upd > 0 then redis.call('HSET', 'aggr:' .. a, unpack(upd)) end

local set = {'Owner', '', 'UpdatedAt', now}
for i = 11, #ARGV do set[#set + 1] = ARGV[i] end
local qlen
if op == 'delay' then
  set[#set + 1] = 'NextAttemptAt'
  set[#set + 1] = now + delay
end
if op == 'done' then
  route_finished(id, now, retention, {j[2], j[3]}, set, a)
else
  redis.call('HSET', jk, unpack(set))
  if op == 'delay' then
    redis.call('ZADD', 'delayed', now + delay, m)
    redis.call('ZADD', 'delayed:' .. a, now + delay, id) -- the aggregation's index
    st.delayed = redis.call('HINCRBY', 'aggr:' .. a, 'delayed', 1)
  else
    qlen = redis.call('LPUSH', 'q:' .. a, id)
  end
end
settle_state(a, st, qlen)
return 1
