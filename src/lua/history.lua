-- Per-minute counters of the last `minutes` minutes for the dashboard chart.
-- ARGV: component, minutes, fields... Returns {first_minute, {values of minute 0}, ...}.
local comp, minutes = ARGV[1], tonumber(ARGV[2])
local last = math.floor(now_ms() / 60000)
local first = last - minutes + 1
local out = {first}
for m = first, last do
  local row = {}
  local vals = redis.call('HMGET', 'hist:' .. comp .. ':' .. m, unpack(ARGV, 3))
  for i = 1, #vals do row[i] = tonumber(vals[i]) or 0 end
  out[#out + 1] = row
end
return out
