if redis.call('EXISTS', KEYS[1]) == 0 then return false end
for i = 2, #ARGV, 3 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then return {'null', ARGV[i]} end
end
for i = 2, #ARGV, 3 do
  local value = redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
  local index = tonumber(ARGV[i + 2])
  if index > 0 then redis.call('ZADD', KEYS[index], value, ARGV[1]) end
end
return redis.call('HGETALL', KEYS[1])
