local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local exp, ghosts, ids_key = KEYS[1], KEYS[2], KEYS[3]
local ids
if ARGV[1] == 'due' then
  ids = redis.call('ZRANGEBYSCORE', exp, '-inf', '(' .. now_ms, 'LIMIT', 0, tonumber(ARGV[2]))
else
  ids = {}
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local swept = 0
for _, id in ipairs(ids) do
  local score = redis.call('ZSCORE', exp, id)
  local ghost = redis.call('HGET', ghosts, id)
  local record_key = nil
  if ghost then
    record_key = string.match(ghost, '^R([^\n]*)')
  end
  local alive = record_key and redis.call('EXISTS', record_key) == 1
  if score and tonumber(score) < now_ms and not alive then
    if ghost then
      for line in string.gmatch(ghost, '[^\n]+') do
        local kind, rest = string.sub(line, 1, 1), string.sub(line, 2)
        if kind == 'S' then
          redis.call('ZREM', rest, id)
        elseif kind == 'L' then
          local key, text = string.match(rest, '^([^%z]*)%z(.*)$')
          redis.call('ZREM', key, text .. '\0' .. id)
        end
      end
    end
    for i = 4, #KEYS do redis.call('ZREM', KEYS[i], id) end
    redis.call('ZREM', ids_key, id)
    redis.call('ZREM', exp, id)
    redis.call('HDEL', ghosts, id)
    swept = swept + 1
  elseif score and alive then
    local left = redis.call('PTTL', record_key)
    if left == -1 then
      redis.call('ZREM', exp, id)
      redis.call('HDEL', ghosts, id)
    elseif left > 0 and tonumber(score) < now_ms then
      redis.call('ZADD', exp, now_ms + left, id)
    end
  end
end
return {swept, #ids}
