-- Sliding expiry: give one session a fresh life of ttl ms on the server's clock, with its token
-- claim expiring at the very same millisecond and its expiry entry moved in step.
-- KEYS: record, expiry index
-- ARGV: token claim head ("{rawsess}:t:"), ttl in ms
-- Returns the record (flat field/value list, empty when there is none).
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then
  return fields
end
local f = {}
for i = 1, #fields, 2 do
  f[fields[i]] = fields[i + 1]
end
local now = redis.call('TIME')
local at = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2]))
redis.call('PEXPIREAT', KEYS[1], at)
redis.call('PEXPIREAT', ARGV[1] .. f.token, at)
redis.call('ZADD', KEYS[2], at, f.id)
return fields
