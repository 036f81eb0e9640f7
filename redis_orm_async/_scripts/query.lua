local ids_key, exp_key, order_key = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[1]
local ntemps = tonumber(ARGV[2])
local last = 3 + tonumber(ARGV[3])
local TTL_MS = 30000
local CHUNK = 256

local touched = false
local function made(key)
  redis.call('PEXPIRE', key, TTL_MS)
  touched = true
  return key
end
local function kind_of(key) return redis.call('TYPE', key)['ok'] end
local function card(key)
  local kind = kind_of(key)
  if kind == 'set' then return redis.call('SCARD', key) end
  if kind == 'zset' then return redis.call('ZCARD', key) end
  return 0
end
local function cleanup()
  -- every temporary key is written through made(); none was, none needs removing
  if ntemps > 0 and touched then
    local temps = {}
    for i = #KEYS - ntemps + 1, #KEYS do temps[#temps + 1] = KEYS[i] end
    redis.call('UNLINK', unpack(temps))
  end
end

local stack = {}
local pc = 4
local function nxt() local v = ARGV[pc]; pc = pc + 1; return v end
local function key_arg() return KEYS[tonumber(nxt())] end
local function add_ids(dst, members, strip)
  local batch = {}
  for _, m in ipairs(members) do
    local id = m
    if strip then id = string.sub(m, string.find(m, '\0', 1, true) + 1) end
    batch[#batch + 1] = 0
    batch[#batch + 1] = id
    if #batch >= 2 * CHUNK then redis.call('ZADD', dst, unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('ZADD', dst, unpack(batch)) end
end

while pc <= last do
  local op = nxt()
  if op == 'A' then
    stack[#stack + 1] = ids_key
  elseif op == 'K' then
    stack[#stack + 1] = key_arg()
  elseif op == 'S' or op == 'X' then
    local src, lo, hi, dst = key_arg(), nxt(), nxt(), key_arg()
    redis.call('ZRANGESTORE', dst, src, lo, hi, op == 'S' and 'BYSCORE' or 'BYLEX')
    stack[#stack + 1] = made(dst)
  elseif op == 'P' then
    local src, prefix, strip, dst = key_arg(), nxt(), nxt() == '1', key_arg()
    add_ids(dst, redis.call('ZRANGEBYLEX', src, '[' .. prefix, '(' .. prefix .. '\255'), strip)
    stack[#stack + 1] = made(dst)
  elseif op == 'C' then
    local claim, dst = key_arg(), key_arg()
    local holder = redis.call('GET', claim)
    if holder and redis.call('ZSCORE', ids_key, holder) then redis.call('ZADD', dst, 0, holder) end
    stack[#stack + 1] = made(dst)
  elseif op == 'I' or op == 'U' then
    local n, dst = tonumber(nxt()), key_arg()
    local args = {dst, n}
    for i = #stack - n + 1, #stack do args[#args + 1] = stack[i] end
    args[#args + 1] = 'WEIGHTS'
    for _ = 1, n do stack[#stack] = nil; args[#args + 1] = 0 end
    redis.call(op == 'I' and 'ZINTERSTORE' or 'ZUNIONSTORE', unpack(args))
    stack[#stack + 1] = made(dst)
  elseif op == 'D' then
    local dst = key_arg()
    local right = table.remove(stack)
    local left = table.remove(stack)
    redis.call('ZDIFFSTORE', dst, 2, left, right)
    stack[#stack + 1] = made(dst)
  else
    cleanup()
    return redis.error_reply('ERR unknown query program op ' .. tostring(op))
  end
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired_list = redis.call('ZRANGEBYSCORE', exp_key, '-inf', '(' .. now_ms)
local expired = {}
for _, id in ipairs(expired_list) do expired[id] = true end

if mode == 'count' then
  local result = stack[#stack]
  local kind = kind_of(result)
  local n = card(result)
  for _, id in ipairs(expired_list) do
    if n == 0 then break end
    if kind == 'set' and redis.call('SISMEMBER', result, id) == 1 then n = n - 1 end
    if kind == 'zset' and redis.call('ZSCORE', result, id) then n = n - 1 end
  end
  cleanup()
  return n
end

if mode == 'ids' then
  local result = stack[#stack]
  local kind = kind_of(result)
  local members = {}
  if kind == 'set' then members = redis.call('SMEMBERS', result) end
  if kind == 'zset' then members = redis.call('ZRANGE', result, 0, -1) end
  local out = {}
  for _, id in ipairs(members) do
    if not expired[id] then out[#out + 1] = id end
  end
  cleanup()
  return out
end

-- mode 'page': walk the ordered segments and return {lead, ids}
local order_kind = ARGV[pc]
local desc = ARGV[pc + 1] == '1'
local multi = ARGV[pc + 2] == '1'
local skip = tonumber(ARGV[pc + 3])
local take = tonumber(ARGV[pc + 4])
local cursor = ARGV[pc + 5]
local id_int = ARGV[pc + 6] == '1'
local filtered = ARGV[pc + 7] == '1'
local low, high = ARGV[pc + 8], ARGV[pc + 9]
local injective = ARGV[pc + 10]
local function exact_at(score)
  if injective == 'always' then return true end
  return injective == 'below53' and math.abs(tonumber(score)) < 9007199254740992
end
local pt = {KEYS[#KEYS - 4], KEYS[#KEYS - 3], KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]}

local filter, filter_kind, zeroed = nil, nil, false
if filtered then
  filter = stack[#stack]
  filter_kind = kind_of(filter)
end
local function restrict(src, dst)
  if not filter then return src end
  if not zeroed and filter ~= ids_key and filter_kind == 'zset' then
    -- zero the scores so that the WEIGHTS below never meet an infinity
    redis.call('ZINTERSTORE', pt[1], 1, filter, 'WEIGHTS', 0)
    filter = made(pt[1])
  end
  zeroed = true
  redis.call('ZINTERSTORE', dst, 2, src, filter, 'WEIGHTS', 1, 0)
  return made(dst)
end
-- A short page over a large ordered ZSET checks each member against the candidates instead of
-- intersecting them first, when the expected walk is shorter than the candidate set.
local function segment(src, dst, rev, tied)
  if filter and take >= 0 then
    local candidates = card(filter)
    local size = redis.call('ZCARD', src)
    if candidates > 0 and (skip + take) * size < candidates * candidates then
      local seg = {key = src, rev = rev, tied = tied, check = filter, ratio = size / candidates}
      seg.check_set = filter_kind == 'set'
      return seg
    end
  end
  return {key = restrict(src, dst), rev = rev, tied = tied}
end

-- a where that is one score range of the ordering ZSET walks that ZSET's rank window directly
local function window(key, rev)
  local base, n
  if rev then
    if high == '+inf' then base = 0
    elseif string.sub(high, 1, 1) == '(' then base = redis.call('ZCOUNT', key, string.sub(high, 2), '+inf')
    else base = redis.call('ZCOUNT', key, '(' .. high, '+inf') end
  else
    if low == '-inf' then base = 0
    elseif string.sub(low, 1, 1) == '(' then base = redis.call('ZCOUNT', key, '-inf', string.sub(low, 2))
    else base = redis.call('ZCOUNT', key, '-inf', '(' .. low) end
  end
  n = redis.call('ZCOUNT', key, low, high)
  return base, n
end

local segs
if low ~= '' then
  local key = order_kind == 'id' and ids_key or order_key
  local base, n = window(key, desc)
  -- bounds that each hold one sort value per score make every score between them exact too
  local function exact_bound(bound)
    local score = tonumber((string.gsub(bound, '^%(', '')))
    return score ~= nil and exact_at(score)
  end
  local inner = exact_bound(low) and exact_bound(high)
  segs = {{key = key, rev = desc, tied = order_kind ~= 'id', base = base, n = n, exact = inner}}
elseif order_kind == 'id' then
  segs = {segment(ids_key, pt[2], desc, false)}
else
  local values = segment(order_key, pt[2], desc, true)
  local nulls = {lazy = true, rev = desc, tied = multi, const = true}
  function nulls.build()
    -- every id has a score unless some record's order field is null (or awaits the sweep)
    if redis.call('ZCARD', ids_key) == redis.call('ZCARD', order_key) then return nil end
    redis.call('ZDIFFSTORE', pt[4], 2, restrict(ids_key, pt[3]), order_key)
    return made(pt[4])
  end
  if desc then segs = {nulls, values} else segs = {values, nulls} end
end
local function ready(seg)
  if seg.lazy then seg.lazy = false; seg.key = seg.build() end
  if seg.key and not seg.n then seg.base = 0; seg.n = redis.call('ZCARD', seg.key) end
  return seg.key
end
-- members with their scores, or (bare) without: a score costs more than its member in a script
local function range(seg, a, b, bare)
  if b >= seg.n then b = seg.n - 1 end
  if b < a then return {} end
  local cmd = seg.rev and 'ZREVRANGE' or 'ZRANGE'
  if bare then return redis.call(cmd, seg.key, seg.base + a, seg.base + b) end
  return redis.call(cmd, seg.key, seg.base + a, seg.base + b, 'WITHSCORES')
end
local function rank_of(seg, count)
  local rank = count - seg.base
  if rank < 0 then return 0 end
  if rank > seg.n then return seg.n end
  return rank
end
local function clean(key)
  for _, id in ipairs(expired_list) do
    if redis.call('ZSCORE', key, id) then return false end
  end
  return true
end

local out, lead, matched = {}, 0, 0
local grp, grp_id, last_id = {}, nil, nil
local function same(a, b)
  return a ~= nil and b ~= nil and a[1] == b[1] and a[2] == b[2]
end
local started, done = false, false
local limit = -1
local start_seg, start_rank = 1, 0

if cursor ~= '' then
  local cscore = redis.call('ZSCORE', ids_key, cursor)
  if not cscore then cleanup(); return {-1, {}} end
  local function id_rank(key, rev)
    if id_int then
      if rev then return redis.call('ZCOUNT', key, cscore, '+inf') end
      return redis.call('ZCOUNT', key, '-inf', cscore)
    end
    if rev then return redis.call('ZLEXCOUNT', key, '[' .. cursor, '+') end
    return redis.call('ZLEXCOUNT', key, '-', '[' .. cursor)
  end
  local extra = 0
  if order_kind == 'id' then
    ready(segs[1])
    start_rank = rank_of(segs[1], id_rank(segs[1].key, desc))
  else
    local zs = redis.call('ZSCORE', order_key, cursor)
    local zi = (desc and #segs == 2) and 2 or 1
    if zs then
      start_seg = zi
      local seg = segs[zi]
      ready(seg)
      local before
      if desc then before = redis.call('ZCOUNT', seg.key, '(' .. zs, '+inf')
      else before = redis.call('ZCOUNT', seg.key, '-inf', '(' .. zs) end
      if exact_at(zs) then
        -- one score, one value: start right after the cursor within its score
        redis.call('ZRANGESTORE', pt[5], seg.key, zs, zs, 'BYSCORE')
        made(pt[5])
        if desc then before = before + redis.call('ZLEXCOUNT', pt[5], '[' .. cursor, '+')
        else before = before + redis.call('ZLEXCOUNT', pt[5], '-', '[' .. cursor) end
      else
        extra = redis.call('ZCOUNT', seg.key, zs, zs)
      end
      start_rank = rank_of(seg, before)
    elseif #segs == 1 then
      start_seg = desc and 1 or 2
    else
      start_seg = desc and 1 or 2
      local nseg = segs[start_seg]
      if ready(nseg) and multi then extra = nseg.n
      elseif nseg.key then start_rank = id_rank(nseg.key, desc) end
    end
  end
  if take >= 0 then limit = skip + take + extra end
  skip = 0
elseif take >= 0 then
  limit = skip + take
end

local function visit(si, seg, m, sc)
  if expired[m] then return end
  if seg.check then
    if seg.check_set then
      if redis.call('SISMEMBER', seg.check, m) == 0 then return end
    elseif not redis.call('ZSCORE', seg.check, m) then
      return
    end
  end
  -- a tie group is one segment and one numeric score (so that -0 and 0 are one group)
  local gid = nil
  if seg.const then
    if seg.tied then gid = {si, 0} end
  elseif seg.tied and not exact_at(sc) then
    gid = {si, tonumber(sc)}
  end
  if matched < skip then
    if gid then
      if not same(gid, grp_id) then grp = {}; grp_id = gid end
      grp[#grp + 1] = m
    end
    matched = matched + 1
  elseif limit < 0 or matched < limit then
    if not started then
      started = true
      if same(gid, grp_id) then
        for _, x in ipairs(grp) do out[#out + 1] = x end
        lead = #grp
      end
    end
    out[#out + 1] = m
    last_id = gid
    matched = matched + 1
  elseif same(gid, last_id) then
    out[#out + 1] = m
  else
    done = true
  end
end

-- A segment whose members need no candidate check and can open no tie group (one sort value per
-- score all along it, checked at its two ends since scores are ordered) is read without scores,
-- and each member is only counted, kept or ends the page: what ``visit`` does for it, cheaper.
local function plain(seg)
  if seg.check or seg.const then return false end
  if not seg.tied or seg.exact or injective == 'always' then return true end
  if injective ~= 'below53' or seg.n == 0 then return false end
  local first, last = range(seg, 0, 0)[2], range(seg, seg.n - 1, seg.n - 1)[2]
  return first ~= nil and last ~= nil and exact_at(first) and exact_at(last)
end
local function visit_plain(ids)
  for _, m in ipairs(ids) do
    if expired[m] then
      -- left out, as in visit
    elseif matched < skip then
      matched = matched + 1
    elseif limit < 0 or matched < limit then
      started = true
      out[#out + 1] = m
      last_id = nil
      matched = matched + 1
    else
      done = true
      return
    end
  end
end

local function jump(seg)
  local want = skip - matched
  if want <= 0 or seg.check or not clean(seg.key) then return 0 end
  local n = seg.n
  if want >= n then
    matched = matched + n
    grp, grp_id = {}, nil
    return n
  end
  if not seg.tied then
    matched = matched + want
    return want
  end
  if seg.const then return 0 end
  local sc = range(seg, want, want)[2]
  if exact_at(sc) then
    matched = matched + want
    return want
  end
  local before
  if seg.rev then before = rank_of(seg, redis.call('ZCOUNT', seg.key, '(' .. sc, '+inf'))
  else before = rank_of(seg, redis.call('ZCOUNT', seg.key, '-inf', '(' .. sc)) end
  matched = matched + before
  return before
end

for si = start_seg, #segs do
  local seg = segs[si]
  if ready(seg) then
    local rank = 0
    if cursor ~= '' then
      if si == start_seg then rank = start_rank end
    else
      rank = jump(seg)
    end
    local n = seg.n
    local bare = rank < n and plain(seg)
    while not done and rank < n do
      local size = CHUNK
      local left = limit - matched + 1
      if seg.check then left = math.ceil(left * seg.ratio * 1.25) end
      if limit >= 0 and left < size then size = math.max(8, left) end
      local chunk = range(seg, rank, rank + size - 1, bare)
      if #chunk == 0 then break end
      if bare then
        visit_plain(chunk)
      else
        for j = 1, #chunk, 2 do
          visit(si, seg, chunk[j], chunk[j + 1])
          if done then break end
        end
      end
      rank = rank + size
    end
  end
  if started and limit >= 0 and matched >= limit then done = true end
  if done then break end
end
cleanup()
return {lead, out}
