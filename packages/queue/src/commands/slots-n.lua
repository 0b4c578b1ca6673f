-- Takes and frees tenants' fleet-wide running slots for many attempts in one call, in order. A slot
-- is a lease that ends by itself (a crashed worker's slot comes back when its attempt could no
-- longer be running). The key count varies: two per operation.
-- KEYS: per operation, its tenant's running (zset jobId -> lease end ms) and pending (zset jobId -> accepted ms).
-- ARGV: per operation: op, jobId, now ms, maxRunningJobs, lease end ms, where op is
--   1 enter: take a slot until lease end (a job already holding one keeps it, with the new lease);
--   2 leave: free the job's slot; 3 finish: free it and end the job's pending entry.
-- Reply: one number per operation: enter -1 entered, else (every slot taken) how many of the
--   tenant's unstarted jobs are older than this one; leave and finish 0.
local reply, swept = {}, {}
for op = 0, #KEYS / 2 - 1 do
  local running, pending = KEYS[op * 2 + 1], KEYS[op * 2 + 2]
  local kind, jobId, now = ARGV[op * 5 + 1], ARGV[op * 5 + 2], tonumber(ARGV[op * 5 + 3])
  local result = 0
  if kind == '1' then
    if (swept[running] or -1) < now then
      redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
      swept[running] = now
    end
    local count = redis.call('ZCARD', running)
    if count < tonumber(ARGV[op * 5 + 4]) or redis.call('ZSCORE', running, jobId) then
      redis.call('ZADD', running, ARGV[op * 5 + 5], jobId)
      result = -1
    else
      local older = redis.call('ZRANK', pending, jobId) or 0
      result = math.max(0, older - count)
    end
  else
    redis.call('ZREM', running, jobId)
    if kind == '3' then redis.call('ZREM', pending, jobId) end
  end
  reply[#reply + 1] = result
end
return reply
