-- POST /retry/<id>: re-queue a Failed callback. ARGV: id.
-- Returns {"notfound"}, {"state", field, value, ...} when the callback is not Failed,
-- or {"ok", queued (1/0)}.
local id = ARGV[1]
local r = retry_callback(id)
if r == 'notfound' then return {'notfound'} end
if r == 'state' then
  local out = {'state'}
  for _, v in ipairs(redis.call('HGETALL', 'job:' .. id)) do out[#out + 1] = v end
  return out
end
return {'ok', r == 'queued' and 1 or 0}
