--[[
  Takes the lock if it is free and hands the new holder the next fencing token, in one step, so a
  token is only ever issued to a holder and tokens grow in the order the lock was taken.

  Input:
    KEYS[1] lock key (value: the holder's owner token)
    KEYS[2] fencing counter (never expires, so tokens keep growing across holders)

    ARGV[1] owner token
    ARGV[2] ttl in milliseconds

  Output:
    {1, fencing token} when taken
    {0, remaining ttl of the current holder in milliseconds} when held by someone else
]]
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return {1, redis.call("INCR", KEYS[2])}
end
return {0, redis.call("PTTL", KEYS[1])}
