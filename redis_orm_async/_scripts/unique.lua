--! include keys.lua
-- One record by a unique value in one round trip, read-only: the claim key holds the id, the id
-- gives the record key. KEYS[1]: the claim; ARGV[1]: the record key head ('<base>:r:');
-- ARGV[2]: 'all' (HGETALL), 'some' (HMGET of ARGV[3..]) or 'ttl' (HMGET, then PTTL).
-- Replies false when nothing claims the value, else {id, fields[, pttl]}; the caller checks that
-- the record still holds the value, since only that makes the claim's answer right.
local id = redis.call('GET', KEYS[1])
if not id then return false end
local key = ARGV[1] .. escape(id)
if ARGV[2] == 'all' then
  return {id, redis.call('HGETALL', key)}
end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local values = redis.call('HMGET', key, unpack(fields))
if ARGV[2] == 'ttl' then
  return {id, values, redis.call('PTTL', key)}
end
return {id, values}
