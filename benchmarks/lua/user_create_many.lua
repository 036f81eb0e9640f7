-- Create a chunk of users, all or nothing: every email claim is checked before anything is
-- written, then the records, one ZADD per index key and one MSET of the claims.
-- KEYS: ids, age index (every other key shares their hash tag and is built from ARGV[1])
-- ARGV: base ("{rawuser}"), then id, email, name, age, status for each user
-- Returns 0, or the 1-based position of the first user whose email a live record holds.
local base = ARGV[1]
local n = (#ARGV - 1) / 5
local head = base .. ':r:'
local claims = {}
for i = 1, n do
  claims[i] = base .. ':e:' .. ARGV[5 * i - 2]
end
local holders = redis.call('MGET', unpack(claims))
for i = 1, n do
  local holder = holders[i]
  if holder and holder ~= ARGV[5 * i - 3] and redis.call('EXISTS', head .. holder) == 1 then
    return i
  end
end
local ids, ages, sets, claimed = {}, {}, {}, {}
for i = 1, n do
  local at = 5 * i - 3
  local id, email, name, age, status = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  redis.call('HSET', head .. id, 'id', id, 'email', email, 'name', name, 'age', age, 'status', status)
  ids[#ids + 1] = 0
  ids[#ids + 1] = id
  ages[#ages + 1] = age
  ages[#ages + 1] = id
  local set = sets[status]
  if not set then
    set = {}
    sets[status] = set
  end
  set[#set + 1] = 0
  set[#set + 1] = id
  claimed[#claimed + 1] = claims[i]
  claimed[#claimed + 1] = id
end
redis.call('ZADD', KEYS[1], unpack(ids))
redis.call('ZADD', KEYS[2], unpack(ages))
for status, set in pairs(sets) do
  redis.call('ZADD', base .. ':s:' .. status, unpack(set))
end
redis.call('MSET', unpack(claimed))
return 0
