-- Sliding expiry of the session a token names: its record and token claim get a fresh life of
-- ttl ms on the server's clock, at the very same millisecond, and its expiry entry moves in step.
-- A claim whose record is gone, or no longer holds that token, names no session.
-- KEYS: the token claim, the expiry index
-- ARGV: record key head ("{rawsess}:r:"), ttl in ms, the token
-- Returns the record (flat field/value list, empty when there is none).
local id = redis.call('GET', KEYS[1])
if not id then
  return {}
end
local record = ARGV[1] .. id
local fields = redis.call('HGETALL', record)
local token = nil
for i = 1, #fields, 2 do
  if fields[i] == 'token' then token = fields[i + 1] end
end
if token ~= ARGV[3] then
  return {}
end
local now = redis.call('TIME')
local at = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2]))
redis.call('PEXPIREAT', record, at)
redis.call('PEXPIREAT', KEYS[1], at)
redis.call('ZADD', KEYS[2], at, id)
return fields
