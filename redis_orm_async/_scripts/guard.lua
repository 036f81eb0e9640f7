local pos = 0
local function take()
  pos = pos + 1
  return ARGV[pos]
end
local function text(value)
  if type(value) == 'table' and value.ok then return value.ok end
  return value
end
local function same(actual)
  local tag = take()
  actual = text(actual)
  if tag == 'n' then
    return actual == false
  elseif tag == 's' then
    return type(actual) == 'string' and actual == take()
  elseif tag == 'i' then
    return type(actual) == 'number' and actual == tonumber(take())
  elseif tag == 'a' then
    local n = tonumber(take())
    if type(actual) ~= 'table' or #actual ~= n then return false end
    for i = 1, n do
      if not same(actual[i]) then return false end
    end
    return true
  elseif tag == 'm' or tag == 'u' then
    local n = tonumber(take())
    if type(actual) ~= 'table' or #actual ~= n then return false end
    local want = {}
    if tag == 'm' then
      for i = 1, n, 2 do
        local field = take()
        want[field] = take()
      end
      for i = 1, n, 2 do
        if want[actual[i]] ~= actual[i + 1] then return false end
      end
    else
      for i = 1, n do
        local item = take()
        want[item] = (want[item] or 0) + 1
      end
      for i = 1, n do
        local left = want[actual[i]]
        if not left or left == 0 then return false end
        want[actual[i]] = left - 1
      end
    end
    return true
  end
  return error('guard: unknown tag ' .. tostring(tag))
end
local function command()
  local n = tonumber(take())
  local args = {}
  for i = 1, n do args[i] = take() end
  return args
end
local reads = tonumber(take())
for r = 1, reads do
  local mode = take()
  if mode ~= 'x' then
    if not same(redis.call(unpack(command()))) then return {0} end
  end
end
local writes = tonumber(take())
local results = {1}
local failed = nil
for w = 1, writes do
  local reply = redis.pcall(unpack(command()))
  if type(reply) == 'table' and reply.err then
    failed = failed or {2, w, reply.err}
    reply = false
  end
  results[w + 1] = reply
end
return failed or results
