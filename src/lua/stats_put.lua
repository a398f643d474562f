-- Publish one instance's heartbeat and stats. ARGV: component, instance, live_ms,
-- keep_ms, info_json, then counter deltas as field/value pairs. live_ms 0: the instance
-- stops cleanly; its entry and info are removed (the counters still count).
-- Counters accumulate in `stats:<component>` (they survive restarts) and in per-minute
-- buckets `hist:<component>:<minute>` kept for two hours (dashboard throughput).
local comp, inst, live, keep = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local name = comp .. ':' .. inst
local now = now_ms()
if live == 0 then
  redis.call('ZREM', 'instances', name)
  redis.call('DEL', 'instance:' .. name)
else
  redis.call('ZADD', 'instances', now + live, name)
  redis.call('ZREMRANGEBYSCORE', 'instances', '-inf', now - keep)
  redis.call('SET', 'instance:' .. name, ARGV[5], 'PX', keep + live)
end
if #ARGV >= 7 then
  local hk = 'hist:' .. comp .. ':' .. math.floor(now / 60000)
  for i = 6, #ARGV, 2 do
    redis.call('HINCRBY', 'stats:' .. comp, ARGV[i], ARGV[i + 1])
    redis.call('HINCRBY', hk, ARGV[i], ARGV[i + 1])
  end
  redis.call('PEXPIRE', hk, 7200000)
end
return 1
