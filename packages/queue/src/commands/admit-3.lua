-- Admits jobs of one tenant and kind, in order: counts each against the tenant's waiting and daily
-- quotas and gives its priority, the tenant's count of jobs not yet started (itself included).
-- One call for a whole batch: each job is judged by what the ones before it left.
-- KEYS: pending (zset jobId -> accepted ms), running (zset jobId -> lease end ms), day counter.
-- ARGV: now ms, maxWaitingJobs, jobsPerDay, day counter ttl s, highest priority, jobId...
-- Reply: three numbers per job, in order:
--        1, priority, 1   admitted;
--        1, priority, 0   already pending (nothing is counted twice);
--        0, 1, waiting    over maxWaitingJobs;
--        0, 2, accepted   over jobsPerDay.
local pending, running, day = KEYS[1], KEYS[2], KEYS[3]
local now, maxWaiting, perDay = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, highest = ARGV[4], tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
local waiting = redis.call('ZCARD', pending) - redis.call('ZCARD', running)
if waiting < 0 then waiting = 0 end
local accepted = tonumber(redis.call('GET', day) or '0')
local counted = 0
local reply = {}
for i = 6, #ARGV do
  local jobId = ARGV[i]
  if redis.call('ZSCORE', pending, jobId) then
    table.insert(reply, 1); table.insert(reply, math.max(1, math.min(waiting, highest))); table.insert(reply, 0)
  elseif waiting >= maxWaiting then
    table.insert(reply, 0); table.insert(reply, 1); table.insert(reply, waiting)
  elseif accepted >= perDay then
    table.insert(reply, 0); table.insert(reply, 2); table.insert(reply, accepted)
  else
    redis.call('ZADD', pending, now, jobId)
    waiting = waiting + 1
    accepted = accepted + 1
    counted = counted + 1
    table.insert(reply, 1); table.insert(reply, math.min(waiting, highest)); table.insert(reply, 1)
  end
end
if counted > 0 then
  redis.call('INCRBY', day, counted)
  redis.call('EXPIRE', day, ttl)
end
return reply
