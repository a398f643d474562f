-- Liveness of instances, and takeover of the work of instances that are gone.
-- KEYS: live (sorted set: owner -> deadline), live:last (time of the latest call by
-- any instance), leases, cb:leases, live:released (count of owners taken for gone).
-- ARGV: owner, live_ms, gap_ms. live_ms 0: the owner stops cleanly; what it still
-- holds is released at once and its entry removed.
-- Every instance calls this about once a second. An owner whose deadline passed is
-- dead: its download and callback leases get the score `now` (expired), so the next
-- claim.lua / cb_claim.lua takes them back through the lease-expiry path (inflight,
-- LostLeases), its reap entries become due again, wake-ups go out, and it is forgotten.
-- When no instance got through for gap_ms (Redis hung or restarted, a failover, a clock
-- step), deadlines say nothing about the instances: everyone gets a fresh one instead.
-- Returns {owner, downloads, callbacks, deletions, ...} for each owner released.
local owner, live, gap = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local last = tonumber(redis.call('GET', KEYS[2]))
redis.call('SET', KEYS[2], now)

-- Expires the leases of set key k held by o; id_of maps a member to its job id. Only
-- leases still running (score > now) are looked at; one HGET each, paid only when an
-- owner is released.
local function expire_owned(k, o, id_of)
  local n = 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, '(' .. now, '+inf')) do
    if redis.call('HGET', 'job:' .. id_of(m), 'Owner') == o then
      redis.call('ZADD', k, 'XX', now, m)
      n = n + 1
    end
  end
  return n
end

local function release(o)
  local dl = expire_owned(KEYS[3], o, split_member)
  if dl > 0 then redis.call('PUBLISH', WAKE, 'dl') end
  local cb = expire_owned(KEYS[4], o, function(m) return m end)
  if cb > 0 then redis.call('PUBLISH', WAKE, 'cb') end
  -- reap entries held by o, recorded by reap_claim.lua: key derived from the owner
  local rk, rp = 'live:reap:' .. o, 0
  local h = redis.call('HGETALL', rk)
  for i = 1, #h, 2 do
    local id, q = split_member(h[i])
    local s = redis.call('ZSCORE', q, id)
    if s and tonumber(s) == tonumber(h[i + 1]) and tonumber(s) > now then
      redis.call('ZADD', q, now, id)
      rp = rp + 1
    end
  end
  redis.call('DEL', rk)
  if rp > 0 then redis.call('PUBLISH', WAKE, 'reap') end
  redis.call('ZREM', KEYS[1], o)
  return {o, tostring(dl), tostring(cb), tostring(rp)}
end

if live == 0 then return release(owner) end
redis.call('ZADD', KEYS[1], now + live, owner)
if not last or now < last or now - last > gap then
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) < now + live then redis.call('ZADD', KEYS[1], now + live, all[i]) end
  end
  return {}
end
local out = {}
for _, o in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 16)) do
  redis.call('INCR', KEYS[5])
  for _, v in ipairs(release(o)) do out[#out + 1] = v end
end
return out
