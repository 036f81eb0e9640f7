-- Delete one user with its index entries and its email claim, in one atomic step.
-- KEYS: record, ids, age index
-- ARGV: base ("{rawuser}"), id
-- Returns the deleted record (flat field/value list, empty when there was none). The claim is
-- deleted without a check: a live record's claim always points at it, since a claim is only
-- taken over from a record that no longer exists.
local old = redis.call('HGETALL', KEYS[1])
if #old == 0 then
  return old
end
local status, email
for i = 1, #old, 2 do
  local name = old[i]
  if name == 'status' then
    status = old[i + 1]
  elseif name == 'email' then
    email = old[i + 1]
  end
end
local base, id = ARGV[1], ARGV[2]
redis.call('DEL', KEYS[1], base .. ':e:' .. email)
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', base .. ':s:' .. status, id)
redis.call('ZREM', KEYS[3], id)
return old
