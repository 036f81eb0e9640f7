-- Set one user's status and move its equality-index entry, in one atomic step.
-- KEYS: record, the new status's index
-- ARGV: status index head ("{rawuser}:s:"), id, new status
-- Returns the record as it was (flat field/value list, empty when there is no record).
local old = redis.call('HGETALL', KEYS[1])
if #old == 0 then
  return old
end
local current
for i = 1, #old, 2 do
  if old[i] == 'status' then
    current = old[i + 1]
    break
  end
end
if current ~= ARGV[3] then
  redis.call('HSET', KEYS[1], 'status', ARGV[3])
  redis.call('ZREM', ARGV[1] .. current, ARGV[2])
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
end
return old
