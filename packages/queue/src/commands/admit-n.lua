-- Admits jobs of any tenants in one call, in order, each as if alone: counts it against its
-- tenant's waiting and daily quotas and answers its priority, the tenant's count of jobs not yet
-- started (itself included). The key count varies: three per job.
-- KEYS: per job, its tenant's pending (zset jobId -> accepted ms), running (zset jobId -> lease end ms), day counter.
-- ARGV: day counter ttl s, highest priority, then per job: jobId, now ms, maxWaitingJobs, jobsPerDay.
-- Reply: three numbers per job: {1, priority, 1} admitted; {1, priority, 0} already pending (nothing
--        is counted twice); {0, 1, waiting} over maxWaitingJobs; {0, 2, accepted} over jobsPerDay.
--
-- A script runs alone, so what it reads of a tenant stays true but for its own writes: each count
-- is read once per key and call and then kept here (a call of many jobs of one tenant costs two
-- commands a job, its duplicate check and its entry, instead of six), and each day counter gets
-- its additions in one INCRBY at the end.
local ttl, highest = ARGV[1], tonumber(ARGV[2])
local reply = {}
local swept, pendingCount, runningCount = {}, {}, {}
local dayCount, dayAdded, days = {}, {}, {}
for job = 0, #KEYS / 3 - 1 do
  local pending, running, day = KEYS[job * 3 + 1], KEYS[job * 3 + 2], KEYS[job * 3 + 3]
  local jobId, now = ARGV[job * 4 + 3], tonumber(ARGV[job * 4 + 4])
  local maxWaiting, perDay = tonumber(ARGV[job * 4 + 5]), tonumber(ARGV[job * 4 + 6])
  -- Expired leases are swept once per tenant and instant of the call.
  if (swept[running] or -1) < now then
    redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
    swept[running] = now
    runningCount[running] = redis.call('ZCARD', running)
  end
  if pendingCount[pending] == nil then pendingCount[pending] = redis.call('ZCARD', pending) end
  local waiting = math.max(0, pendingCount[pending] - runningCount[running])
  local admitted, detail, third = 1, 0, 0
  if redis.call('ZSCORE', pending, jobId) then
    detail = math.max(1, math.min(waiting, highest))
  elseif waiting >= maxWaiting then
    admitted, detail, third = 0, 1, waiting
  else
    if dayCount[day] == nil then
      dayCount[day] = tonumber(redis.call('GET', day) or '0')
      days[#days + 1] = day
    end
    if dayCount[day] >= perDay then
      admitted, detail, third = 0, 2, dayCount[day]
    else
      redis.call('ZADD', pending, now, jobId)
      pendingCount[pending] = pendingCount[pending] + 1
      dayCount[day] = dayCount[day] + 1
      dayAdded[day] = (dayAdded[day] or 0) + 1
      detail, third = math.min(waiting + 1, highest), 1
    end
  end
  reply[#reply + 1] = admitted
  reply[#reply + 1] = detail
  reply[#reply + 1] = third
end
for _, day in ipairs(days) do
  local added = dayAdded[day]
  -- The counter outlives its day by itself; the call that creates it sets when it goes.
  if added ~= nil and redis.call('INCRBY', day, added) == added then redis.call('EXPIRE', day, ttl) end
end
return reply
