-- Totals of one component for GET /stats/<name>. ARGV: component.
-- Counters from `stats:<component>`, gauges summed over live instances, and `alive`
-- (number of live instances). Returns field/value pairs, or {} when nothing is known.
local comp = ARGV[1]
local now = now_ms()
local out = {}
local sums = {}
local alive = 0
for _, name in ipairs(redis.call('ZRANGEBYSCORE', 'instances', now, '+inf')) do
  if string.sub(name, 1, #comp + 1) == comp .. ':' then
    local j = redis.call('GET', 'instance:' .. name)
    if j then
      alive = alive + 1
      local ok, o = pcall(cjson.decode, j)
      if ok and type(o.gauges) == 'table' then
        for k, v in pairs(o.gauges) do sums[k] = (sums[k] or 0) + (tonumber(v) or 0) end
      end
    end
  end
end
local h = redis.call('HGETALL', 'stats:' .. comp)
if #h == 0 and alive == 0 then return {} end
for i = 1, #h do out[#out + 1] = h[i] end
for k, v in pairs(sums) do
  out[#out + 1] = k
  out[#out + 1] = tostring(v)
end
out[#out + 1] = 'alive'
out[#out + 1] = tostring(alive)
return out
