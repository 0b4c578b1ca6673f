--[[
  Deletes the lock only while the caller still holds it (compare-and-delete), so a holder whose
  lock expired can never release the next holder's lock.

  Input:
    KEYS[1] lock key

    ARGV[1] owner token

  Output:
     1 released
     0 the lock is gone (expired)
    -1 another owner holds it
]]
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then
  redis.call("DEL", KEYS[1])
  return 1
end
if holder then
  return -1
end
return 0
