-- Create a chunk of expiring sessions, all or nothing, with one expiry time for all of them:
-- the record, its unique token claim (same PXAT), its index entries and its expiry entry.
-- KEYS: ids, expiry index, state hash (every other key shares their hash tag and is built
-- from ARGV[1])
-- ARGV: base ("{rawsess}"), ttl in ms, then id, token, user_id, status for each session
-- Returns 0, or the 1-based position of the first session whose token a live record holds.
-- The state hash maps an id to the JSON array [status, user_id, token]: what the sweep needs
-- to remove the entries of a record Redis has already dropped. Those fields never change
-- after a session is created, so a touch leaves it alone.
local base, ttl = ARGV[1], tonumber(ARGV[2])
local n = (#ARGV - 2) / 4
local head = base .. ':r:'
local claims = {}
for i = 1, n do
  claims[i] = base .. ':t:' .. ARGV[4 * i]
end
local holders = redis.call('MGET', unpack(claims))
for i = 1, n do
  local holder = holders[i]
  if holder and holder ~= ARGV[4 * i - 1] and redis.call('EXISTS', head .. holder) == 1 then
    return i
  end
end
local now = redis.call('TIME')
local at = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + ttl)
local ids, expiries, states, sets = {}, {}, {}, {}
local function add(key, id)
  local set = sets[key]
  if not set then
    set = {}
    sets[key] = set
  end
  set[#set + 1] = 0
  set[#set + 1] = id
end
for i = 1, n do
  local id, token, user, status = ARGV[4 * i - 1], ARGV[4 * i], ARGV[4 * i + 1], ARGV[4 * i + 2]
  local record = head .. id
  redis.call('HSET', record, 'id', id, 'token', token, 'user_id', user, 'status', status)
  redis.call('PEXPIREAT', record, at)
  redis.call('SET', claims[i], id, 'PXAT', at)
  ids[#ids + 1] = 0
  ids[#ids + 1] = id
  expiries[#expiries + 1] = at
  expiries[#expiries + 1] = id
  states[#states + 1] = id
  states[#states + 1] = cjson.encode({status, user, token})
  add(base .. ':s:' .. status, id)
  add(base .. ':u:' .. user, id)
end
redis.call('ZADD', KEYS[1], unpack(ids))
redis.call('ZADD', KEYS[2], unpack(expiries))
redis.call('HSET', KEYS[3], unpack(states))
for key, set in pairs(sets) do
  redis.call('ZADD', key, unpack(set))
end
return 0
