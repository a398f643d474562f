-- POST /retry/<id>: re-queue a Failed callback. ARGV: id.
-- Returns {"notfound"}, {"state", field, value, ...} when the callback is not Failed,
-- or {"ok", queued (1/0)}.
local id = ARGV[1]
local jk = 'job:' .. id
if redis.call('EXISTS', jk) == 0 then return {'notfound'} end
if redis.call('HGET', jk, 'CallbackState') ~= 'Failed' then
  local r = {'state'}
  for _, v in ipairs(redis.call('HGETALL', jk)) do r[#r + 1] = v end
  return r
end
redis.call('HSET', jk, 'CallbackMeta', '', 'CallbackCount', 0, 'UpdatedAt', now_ms())
local cb = redis.call('HMGET', jk, 'CallbackURL', 'CallbackDst', 'StoreKey')
if (cb[1] and cb[1] ~= '') or (cb[2] and cb[2] ~= '') then
  redis.call('HSET', jk, 'CallbackState', 'Pending')
  redis.call('PERSIST', jk)
  if cb[3] and cb[3] ~= '' then redis.call('ZREM', cb[3], id) end
  redis.call('ZREM', 'cb:failed', id)
  push_callback(id, false)
  return {'ok', 1}
end
return {'ok', 0}
