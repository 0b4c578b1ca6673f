-- Admits jobs of any tenants in one call, in order, each as if alone: counts it against its
-- tenant's waiting and daily quotas and answers its priority, the tenant's count of jobs not yet
-- started (itself included). The key count varies: three per job.
-- KEYS: per job, its tenant's pending (zset jobId -> accepted ms), running (zset jobId -> lease end ms), day counter.
-- ARGV: day counter ttl s, highest priority, then per job: jobId, now ms, maxWaitingJobs, jobsPerDay.
-- Reply: three numbers per job: {1, priority, 1} admitted; {1, priority, 0} already pending (nothing
--        is counted twice); {0, 1, waiting} over maxWaitingJobs; {0, 2, accepted} over jobsPerDay.
local ttl, highest = ARGV[1], tonumber(ARGV[2])
local reply, swept = {}, {}
for job = 0, #KEYS / 3 - 1 do
  local pending, running, day = KEYS[job * 3 + 1], KEYS[job * 3 + 2], KEYS[job * 3 + 3]
  local jobId, now = ARGV[job * 4 + 3], tonumber(ARGV[job * 4 + 4])
  local maxWaiting, perDay = tonumber(ARGV[job * 4 + 5]), tonumber(ARGV[job * 4 + 6])
  -- Expired leases are swept once per tenant and call.
  if (swept[running] or -1) < now then
    redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
    swept[running] = now
  end
  local waiting = math.max(0, redis.call('ZCARD', pending) - redis.call('ZCARD', running))
  local admitted, detail, third = 1, 0, 0
  if redis.call('ZSCORE', pending, jobId) then
    detail = math.max(1, math.min(waiting, highest))
  elseif waiting >= maxWaiting then
    admitted, detail, third = 0, 1, waiting
  else
    local accepted = tonumber(redis.call('GET', day) or '0')
    if accepted >= perDay then
      admitted, detail, third = 0, 2, accepted
    else
      redis.call('ZADD', pending, now, jobId)
      -- The counter outlives its day by itself; its first job sets when it goes.
      if redis.call('INCR', day) == 1 then redis.call('EXPIRE', day, ttl) end
      detail, third = math.min(waiting + 1, highest), 1
    end
  end
  reply[#reply + 1] = admitted
  reply[#reply + 1] = detail
  reply[#reply + 1] = third
end
return reply
