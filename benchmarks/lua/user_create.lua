-- Create one user with its unique email claim, in one atomic step.
-- KEYS: record, email claim, ids, status index, age index
-- ARGV: record key head ("{rawuser}:r:"), id, email, name, age, status
-- Returns 1, or 0 when a live record holds the email. A claim whose record has expired or
-- vanished is stale and is taken over. The common case (a free email) costs one SET NX.
local record, claim = KEYS[1], KEYS[2]
local head, id = ARGV[1], ARGV[2]
if not redis.call('SET', claim, id, 'NX') then
  local holder = redis.call('GET', claim)
  if holder ~= id and redis.call('EXISTS', head .. holder) == 1 then
    return 0
  end
  redis.call('SET', claim, id)
end
redis.call('HSET', record, 'id', id, 'email', ARGV[3], 'name', ARGV[4], 'age', ARGV[5], 'status', ARGV[6])
redis.call('ZADD', KEYS[3], 0, id)
redis.call('ZADD', KEYS[4], 0, id)
redis.call('ZADD', KEYS[5], ARGV[5], id)
return 1
