-- DELETE /download/<id>: cancel a job. KEYS: job:<id>. ARGV: id, keep_ms (how long the
-- cancelled job stays readable: notifier.history, at least long enough for the lease
-- holder to see the cancellation).
-- Queued or delayed: taken out of its queue. Running: the lease is dropped (the slot
-- and a bandwidth share freed at once). Both publish `cancel:<id>`: the processor
-- running it aborts (its dl_finish then answers "cancelled" and queues any stored file
-- for deletion), the others delete a partial file kept for a resume. Finished: a pending, delayed or failed callback is dropped. A stored file
-- goes to its reap queue now. Never a callback afterwards.
-- Returns {"notfound"}, {"delivered"}, {"delivering"} (a callback is being sent now),
-- or {"ok", previous DownloadState}.
local id, keep = ARGV[1], tonumber(ARGV[2])
local jk = KEYS[1]
local h = redis.call('HMGET', jk, 'AggrID', 'DownloadState', 'CallbackState', 'StoreKey', 'Owner')
if not h[1] and redis.call('EXISTS', jk) == 0 then return {'notfound'} end
local a, ds, cs, sk = h[1] or '', h[2] or '', h[3] or '', h[4]
if cs == 'Delivered' then return {'delivered'} end
if cs == 'InProgress' then return {'delivering'} end
if ds == 'Cancelled' then return {'ok', ds} end
local now = now_ms()
-- the keys below derive from the aggregation and store read from the job hash
if ds == 'InProgress' then
  if redis.call('ZREM', 'leases', id .. ':' .. a) == 1 then
    release_slot(a)
    bw_release(a, h[5]) -- its processor's share of a bandwidth cap (bwp:<aggr>)
  end
  redis.call('ZREM', 'running:' .. a, id)
  settle_aggr(a)
elseif ds == 'Pending' or ds == '' then
  if redis.call('ZREM', 'delayed', id .. ':' .. a) == 1 then
    redis.call('ZREM', 'delayed:' .. a, id)
    if redis.call('HINCRBY', 'aggr:' .. a, 'delayed', -1) < 0 then
      redis.call('HSET', 'aggr:' .. a, 'delayed', 0)
    end
    settle_aggr(a)
  else
    -- O(position in the queue): LREM stops at the first match
    redis.call('LREM', 'q:' .. a, 1, id)
    settle_aggr(a)
  end
else
  -- Success or Failed: the callback may be queued, delayed or failed for good
  drop_finished(id)
end
if ds == 'InProgress' or ds == 'Pending' or ds == '' then
  -- the processor running it aborts; the others drop a partial file kept for a resume
  redis.call('PUBLISH', WAKE, 'cancel:' .. id)
end
if sk and sk ~= '' then schedule_reap(id, now, sk) end
redis.call('HSET', jk, 'DownloadState', 'Cancelled', 'CallbackState', '', 'Owner', '',
  'UpdatedAt', now, 'CancelledAt', now)
redis.call('PEXPIRE', jk, keep)
return {'ok', ds}
