-- Remove the index entries of up to ARGV[2] sessions whose expiry time has passed.
-- KEYS: expiry index, ids, state hash
-- ARGV: base ("{rawsess}"), limit
-- Returns {records swept, expiry entries examined}. A record that still exists keeps its
-- entries: its expiry entry is re-scored from its remaining life, or dropped (with its state)
-- if it no longer expires.
local base, limit = ARGV[1], tonumber(ARGV[2])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, limit)
local swept = 0
for _, id in ipairs(due) do
  local left = redis.call('PTTL', base .. ':r:' .. id)
  if left > 0 then
    redis.call('ZADD', KEYS[1], string.format('%.0f', now_ms + left), id)
  else
    if left == -2 then
      local state = redis.call('HGET', KEYS[3], id)
      if state then
        local facts = cjson.decode(state)
        local status, user, token = facts[1], facts[2], facts[3]
        redis.call('ZREM', KEYS[2], id)
        redis.call('ZREM', base .. ':s:' .. status, id)
        redis.call('ZREM', base .. ':u:' .. user, id)
        local claim = base .. ':t:' .. token
        if redis.call('GET', claim) == id then
          redis.call('DEL', claim)
        end
      end
      swept = swept + 1
    end
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
return {swept, #due}
