-- Instances for the dashboard: {now, {name, live_until, info_json}, ...} for every
-- instance seen recently (dead ones stay listed until their info key expires).
local now = now_ms()
local out = {now}
local r = redis.call('ZRANGE', 'instances', 0, -1, 'WITHSCORES')
for i = 1, #r, 2 do
  local j = redis.call('GET', 'instance:' .. r[i])
  if j then out[#out + 1] = {r[i], r[i + 1], j} end
end
return out
