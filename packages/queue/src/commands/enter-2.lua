-- Takes one of the tenant's fleet-wide running slots for a job, for a lease that ends by itself
-- (a crashed worker's slot comes back when its attempt could no longer be running).
-- KEYS: running (zset jobId -> lease end ms), pending. ARGV: jobId, now ms, lease end ms, maxRunningJobs.
-- Reply: {1} entered (a job already holding a slot keeps it, with the new lease);
--        {0, ahead}: every slot is taken; `ahead` of the tenant's unstarted jobs are older than this one.
local running, pending = KEYS[1], KEYS[2]
local jobId, now = ARGV[1], tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
local count = redis.call('ZCARD', running)
if redis.call('ZSCORE', running, jobId) or count < tonumber(ARGV[4]) then
  redis.call('ZADD', running, ARGV[3], jobId)
  return {1}
end
local older = redis.call('ZRANK', pending, jobId) or 0
local ahead = older - count
if ahead < 0 then ahead = 0 end
return {0, ahead}
