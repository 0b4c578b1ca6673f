-- Whether each job just added is the one stored under its id: enqueueMany's read-back, one call
-- for all of a batch's jobs instead of an HMGET each. A job's hash is KEYS[1] .. its id, as
-- BullMQ's own scripts build it from the queue's key prefix (one slot on Redis Cluster).
-- KEYS: the queue's key prefix. ARGV: per job, its id, the timestamp it was sent with and its data
-- as JSON text. Reply: per job, 1 it is ours (or gone already), 0 another job holds the id.
local ours = {}
for i = 1, #ARGV, 3 do
  local stored = redis.call('HMGET', KEYS[1] .. ARGV[i], 'timestamp', 'data')
  local timestamp, data = stored[1], stored[2]
  -- Gone already (a worker finished it and retention removed it): it was ours.
  if not timestamp or not data or (tonumber(timestamp) == tonumber(ARGV[i + 1]) and data == ARGV[i + 2]) then
    ours[#ours + 1] = 1
  else
    ours[#ours + 1] = 0
  end
end
return ours
