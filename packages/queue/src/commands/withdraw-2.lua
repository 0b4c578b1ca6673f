-- Takes back an admission whose request failed: the job leaves the pending set and, when it was
-- there, stops counting against the day's quota.
-- KEYS: pending, day counter. ARGV: jobId. Reply: 1 withdrawn, 0 it was not pending.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
  return 1
end
return 0
