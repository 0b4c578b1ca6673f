--[[
  Extends the lock's ttl only while the caller still holds it (compare-and-pexpire).

  Input:
    KEYS[1] lock key

    ARGV[1] owner token
    ARGV[2] new ttl in milliseconds

  Output:
     1 extended
     0 the lock is gone (expired)
    -1 another owner holds it
]]
local holder = redis.call("GET", KEYS[1])
if holder == ARGV[1] then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return 1
end
if holder then
  return -1
end
return 0
