-- Admits one job of a tenant: counts it against the tenant's waiting and daily quotas and returns
-- its priority, the tenant's count of jobs not yet started (itself included).
-- KEYS: pending (zset jobId -> accepted ms), running (zset jobId -> lease end ms), day counter.
-- ARGV: jobId, now ms, maxWaitingJobs, jobsPerDay, day counter ttl s, highest priority.
-- Reply: {1, priority, 1} admitted; {1, priority, 0} already pending (nothing is counted twice);
--        {0, 1, waiting} over maxWaitingJobs; {0, 2, accepted} over jobsPerDay.
local pending, running, day = KEYS[1], KEYS[2], KEYS[3]
local jobId, now = ARGV[1], tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
local waiting = redis.call('ZCARD', pending) - redis.call('ZCARD', running)
if waiting < 0 then waiting = 0 end
local highest = tonumber(ARGV[6])
if redis.call('ZSCORE', pending, jobId) then
  return {1, math.max(1, math.min(waiting, highest)), 0}
end
if waiting >= tonumber(ARGV[3]) then return {0, 1, waiting} end
local accepted = tonumber(redis.call('GET', day) or '0')
if accepted >= tonumber(ARGV[4]) then return {0, 2, accepted} end
redis.call('ZADD', pending, now, jobId)
redis.call('INCR', day)
redis.call('EXPIRE', day, ARGV[5])
return {1, math.min(waiting + 1, highest), 1}
