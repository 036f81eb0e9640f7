--! include keys.lua
-- Every indexed read, read-only: it creates no key and calls no write command, so it runs on a
-- read-only replica and at maxmemory. Each id it meets is tested with O(1) index lookups (batched
-- per chunk: one ZMSCORE per lookup key), and skipped if its own score in the expiry ZSET is past.
--
-- KEYS: ids ZSET, expiry ZSET, order key (a range ZSET, or the ids ZSET), then the leaves' keys.
-- ARGV (built by _query/planner.py ``compile_program``):
--   mode ('page' | 'count' | 'ids'), '1' for int ids, the record key head ('<base>:r:'),
--   the number of leaves, then per leaf: kind, key index, low, high, text, field
--     M member of a ZSET; S score within [low, high] (ZSET bound syntax); X id within lex bounds;
--     P id starts with text; Q member text..id exists (lex equality); W stored text of field
--     starts with text (its window lists the lex ZSET); C the claim key holds the id.
--   the test, prefix: 'l' i | '!' t | '&' n t... | '|' n t...
--   the source, prefix: 'l' i | '*' every id | '0' nothing | 'p' n s... (fewest) | 'u' n s...
--   count: '1' when the source is the test's one leaf, so that a cardinality answers it;
--   page: order ('id' | 'field'), desc, multi (several order keys), skip, take (-1: all),
--     cursor ('' if none), injective ('always' | 'below53' | 'never': where one score is one
--     sort value), window leaf (0: none), segments ('<nulls><values>', each '0' or '1'),
--     the number of walk leaves (id-ordered top-level AND parts), then their indexes.
-- Replies: page {lead, ids, expired}; count {n, expired}; ids {ids, expired}. ``expired``: up to
-- 256 ids skipped as expired, for lazy cleanup; lead -1: the cursor record does not exist.
--
-- Cost: before Redis 7 this whole chunk runs on every call, so each function below is created
-- anew each time (an allocation, a lookup per captured local, then garbage to collect). Helpers
-- that only some query shapes use are therefore built only by the calls that need them: the id
-- checks and the candidate listing (``tests_ids``), the expiry helpers, rank positions (cursor or
-- skip), tie groups and skipping. A page whose walk needs no check builds some fifteen small
-- functions.
local ids_key, exp_key, order_key = KEYS[1], KEYS[2], KEYS[3]
local CHUNK = 1024
local EXPIRED_MAX = 256
local WINDOW_LIMIT = 1024
local INF = math.huge

-- ARGV is read in order, ``pos`` being the last argument read (indexed directly: a call per
-- argument would cost more than reading it). Numbers arrive as text: ``+ 0`` converts one, at
-- half the cost of ``tonumber`` (which parses it twice).
local mode, id_int, record_head = ARGV[1], ARGV[2] == '1', ARGV[3]
local pos = 3

local function num(text)
  if text == 'inf' or text == '+inf' then return INF end
  if text == '-inf' then return -INF end
  return text + 0
end

-- byte order, as ZSETs and Python order text (Lua's own < follows the server's locale)
local function before(a, b)
  if a == b then return false end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function id_before(a, b)
  if id_int then return a + 0 < b + 0 end
  return before(a, b)
end

local leaves = {}
local claims = false
pos = pos + 1
for i = 1, ARGV[pos] + 0 do
  local kind, key, low, high, text, field = unpack(ARGV, pos + 1, pos + 6)
  pos = pos + 6
  local lo, lox, hi, hix = nil, nil, nil, nil
  if kind == 'S' then
    -- score bounds as numbers, and whether each is exclusive ('(')
    lox, hix = string.sub(low, 1, 1) == '(', string.sub(high, 1, 1) == '('
    lo, hi = num(lox and string.sub(low, 2) or low), num(hix and string.sub(high, 2) or high)
  elseif kind == 'C' then
    claims = true
  end
  leaves[i] = {kind = kind, key = KEYS[key + 0], low = low, high = high, text = text, field = field,
               lo = lo, lox = lox, hi = hi, hix = hix}
end
-- the test or the source, in prefix form (one parser for both: their operators differ)
local function parse_tree()
  local op = ARGV[pos + 1]
  pos = pos + 1
  if op == 'l' then
    pos = pos + 1
    return {op = op, leaf = ARGV[pos] + 0}
  end
  if op == '!' then return {op = op, item = parse_tree()} end
  if op == '*' or op == '0' then return {op = op} end
  local node = {op = op, items = {}}
  pos = pos + 1
  for k = 1, ARGV[pos] + 0 do node.items[k] = parse_tree() end
  return node
end
local test = parse_tree()
local source = parse_tree()

-- page mode's arguments, read up front: they tell whether the page may test ids (``tests_ids``)
local order_kind, desc, multi, skip, take, cursor, injective, window_leaf
local want_nulls, want_values, walk_leaves = false, false, {}
if mode == 'page' then
  local wanted, walks  -- '<nulls><values>', the number of walk leaves
  order_kind, desc, multi, skip, take, cursor, injective, window_leaf, wanted, walks =
    unpack(ARGV, pos + 1, pos + 10)
  desc, multi, skip, take, window_leaf = desc == '1', multi == '1', skip + 0, take + 0, window_leaf + 0
  want_nulls, want_values = wanted == '10' or wanted == '11', wanted == '01' or wanted == '11'
  for k = 1, walks + 0 do walk_leaves[k] = ARGV[pos + 10 + k] + 0 end
end

-- the expiry rule: an id whose score in the expiry ZSET is before now is expired. Without that
-- ZSET no id can be, and its helpers are not built: call due() only while ``exp_live``.
local exp_live = redis.call('EXISTS', exp_key) == 1
local expired = {}
local now, due, note_expired = nil, nil, nil
if exp_live then
  local now_ms, due_count, seen = nil, nil, {}
  now = function()
    if not now_ms then
      local t = redis.call('TIME')
      now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    return now_ms
  end
  due = function()
    if not exp_live then return 0 end
    if due_count == nil then
      due_count = redis.call('ZCOUNT', exp_key, '-inf', '(' .. now())
      -- nothing is due: no id met can be expired, so none needs its expiry score looked up
      if due_count == 0 then exp_live = false end
    end
    return due_count
  end
  note_expired = function(id)
    if #expired < EXPIRED_MAX and not seen[id] then
      seen[id] = true
      expired[#expired + 1] = id
    end
  end
end

-- a claim leaf's holder (false: none or gone), read once; built for queries with a claim leaf
local holder = nil
if claims then
  local holders = {}
  holder = function(leaf)
    local found = holders[leaf.key]
    if found == nil then
      found = redis.call('GET', leaf.key)
      if found and not redis.call('ZSCORE', ids_key, found) then found = false end
      holders[leaf.key] = found
    end
    return found
  end
end

-- the chunk of ids being checked, and its leaf values, computed on first use: one command per
-- leaf and chunk (both set by ``check``)
local chunk, vals = nil, nil

-- true when every id listed by the leaf ``known`` passes the test
local function trivial(node, known)
  if node.op == 'l' then return node.leaf == known end
  if node.op ~= '&' then return false end
  for _, item in ipairs(node.items) do
    if not trivial(item, known) then return false end
  end
  return true
end

-- Whether this call may test ids; only then are the id checks and the candidate listing below
-- built. Listing ids always does; so does a count, unless a cardinality answers it. A page does
-- unless nothing can expire, no segment holds ids without a sort value (it tests for those), and
-- the test holds for every id its walk lists, whichever walk it takes (then it never sorts).
local tests_ids = true
if mode == 'count' then
  -- the covering leaf's cardinality answers a count where nothing can expire
  tests_ids = ARGV[pos + 1] ~= '1' or exp_live
elseif mode == 'page' and not exp_live then
  if order_kind == 'id' then
    -- the walk: one of the walk leaves, or the id ZSET when there are none
    tests_ids = #walk_leaves == 0 and not trivial(test, nil)
    for k = 1, #walk_leaves do tests_ids = tests_ids or not trivial(test, walk_leaves[k]) end
  else
    tests_ids = want_nulls or (want_values and not trivial(test, window_leaf > 0 and window_leaf or nil))
  end
end

-- The id checks: check(ms, known, nullkey) and eval(node, j, m, known) over the current chunk.
local check, eval = nil, nil
if tests_ids then
  local function lex_ok(m, low, high)
    if low ~= '-' then
      local v = string.sub(low, 2)
      if string.sub(low, 1, 1) == '(' then
        if not before(v, m) then return false end
      elseif before(m, v) then
        return false
      end
    end
    if high ~= '+' then
      local v = string.sub(high, 2)
      if string.sub(high, 1, 1) == '(' then
        if not before(m, v) then return false end
      elseif before(v, m) then
        return false
      end
    end
    return true
  end
  local function in_bounds(score, leaf)
    if not score then return false end
    local v = num(score)
    if leaf.lox then
      if not (v > leaf.lo) then return false end
    elseif v < leaf.lo then
      return false
    end
    if leaf.hix then
      if not (v < leaf.hi) then return false end
    elseif v > leaf.hi then
      return false
    end
    return true
  end
  local function present(reply)
    for j = 1, #reply do reply[j] = reply[j] ~= false end
    return reply
  end
  local function vector(i)
    local leaf, ms, out = leaves[i], chunk, {}
    local kind = leaf.kind
    if kind == 'M' then
      return present(redis.call('ZMSCORE', leaf.key, unpack(ms)))
    elseif kind == 'S' then
      out = redis.call('ZMSCORE', leaf.key, unpack(ms))
      for j = 1, #ms do out[j] = in_bounds(out[j], leaf) end
    elseif kind == 'Q' then
      local members = {}
      for j = 1, #ms do members[j] = leaf.text .. ms[j] end
      return present(redis.call('ZMSCORE', leaf.key, unpack(members)))
    elseif kind == 'X' then
      for j = 1, #ms do out[j] = lex_ok(ms[j], leaf.low, leaf.high) end
    elseif kind == 'P' then
      for j = 1, #ms do out[j] = string.sub(ms[j], 1, #leaf.text) == leaf.text end
    elseif kind == 'C' then
      local h = holder(leaf)
      for j = 1, #ms do out[j] = h == ms[j] end
    end
    return out
  end
  local function leaf_value(i, j, m)
    local leaf = leaves[i]
    if leaf.kind == 'W' then
      -- read per id, and only when the rest of the test still needs it
      local text = redis.call('HGET', record_head .. escape(m), leaf.field)
      return text and string.sub(text, 1, #leaf.text) == leaf.text
    end
    local v = vals[i]
    if v == nil then
      v = vector(i)
      vals[i] = v
    end
    return v[j]
  end
  eval = function(node, j, m, known)
    local op = node.op
    if op == 'l' then
      if node.leaf == known then return true end
      return leaf_value(node.leaf, j, m)
    elseif op == '!' then
      return not eval(node.item, j, m, known)
    elseif op == '&' then
      for _, item in ipairs(node.items) do
        if not eval(item, j, m, known) then return false end
      end
      return true
    end
    for _, item in ipairs(node.items) do
      if eval(item, j, m, known) then return true end
    end
    return false
  end
  -- which of the ids ms pass: the test (``known`` already holds for all of them), not expired,
  -- and, with ``nullkey``, without a score there; also how many of them had no such score
  check = function(ms, known, nullkey)
    local out, nulls = {}, 0
    if #ms == 0 then return out, nulls end
    chunk, vals = ms, {}
    local es = exp_live and redis.call('ZMSCORE', exp_key, unpack(ms)) or nil
    local ns = nullkey and redis.call('ZMSCORE', nullkey, unpack(ms)) or nil
    if ns then
      -- membership of the null-checked ZSET is already known (``field is null`` tests it)
      for i, leaf in ipairs(leaves) do
        if leaf.kind == 'M' and leaf.key == nullkey then
          local v = {}
          for j = 1, #ms do v[j] = ns[j] ~= false end
          vals[i] = v
        end
      end
    end
    local simple = trivial(test, known)
    for j, m in ipairs(ms) do
      local ok = true
      if ns then
        if ns[j] then ok = false else nulls = nulls + 1 end
      end
      if ok and es and es[j] and num(es[j]) < now() then
        ok = false
        note_expired(m)
      end
      if ok and not simple then ok = eval(test, j, m, known) end
      out[j] = ok
    end
    return out, nulls
  end
end

-- A span: the members of one ZSET, or of a score or lex window of it, in walk order, read by
-- rank; or a list already in walk order (a claim's holder, sorted candidates).
local spans = {}
local function whole(key) return {key = key, by = 'rank'} end
local function span_of(i)
  if spans[i] == nil then
    local leaf = leaves[i]
    local kind = leaf.kind
    if kind == 'M' then
      spans[i] = whole(leaf.key)
    elseif kind == 'S' then
      spans[i] = {key = leaf.key, by = 'score', low = leaf.low, high = leaf.high}
    elseif kind == 'C' then
      local h = holder(leaf)
      spans[i] = {list = h and {h} or {}}
    else
      spans[i] = {key = leaf.key, by = 'lex', low = leaf.low, high = leaf.high, strip = kind == 'Q' or kind == 'W'}
    end
  end
  return spans[i]
end
local function card(sp)
  if sp.n == nil then
    if sp.list then
      sp.n = #sp.list
    elseif sp.by == 'rank' then
      sp.n = redis.call('ZCARD', sp.key)
    elseif sp.by == 'score' then
      sp.n = redis.call('ZCOUNT', sp.key, sp.low, sp.high)
    else
      sp.n = redis.call('ZLEXCOUNT', sp.key, sp.low, sp.high)
    end
  end
  return sp.n
end
-- members of the ZSET ahead of the window in walk order, so that ranks in the window are absolute
local function base(sp, rev)
  local slot = rev and 'rbase' or 'base'
  if sp[slot] == nil then
    local b = 0
    if sp.by == 'score' then
      if rev and sp.high ~= '+inf' then
        if string.sub(sp.high, 1, 1) == '(' then
          b = redis.call('ZCOUNT', sp.key, string.sub(sp.high, 2), '+inf')
        else
          b = redis.call('ZCOUNT', sp.key, '(' .. sp.high, '+inf')
        end
      elseif not rev and sp.low ~= '-inf' then
        if string.sub(sp.low, 1, 1) == '(' then
          b = redis.call('ZCOUNT', sp.key, '-inf', string.sub(sp.low, 2))
        else
          b = redis.call('ZCOUNT', sp.key, '-inf', '(' .. sp.low)
        end
      end
    elseif sp.by == 'lex' then
      if rev and sp.high ~= '+' then
        local v = string.sub(sp.high, 2)
        if string.sub(sp.high, 1, 1) == '(' then
          b = redis.call('ZLEXCOUNT', sp.key, '[' .. v, '+')
        else
          b = redis.call('ZLEXCOUNT', sp.key, '(' .. v, '+')
        end
      elseif not rev and sp.low ~= '-' then
        local v = string.sub(sp.low, 2)
        if string.sub(sp.low, 1, 1) == '(' then
          b = redis.call('ZLEXCOUNT', sp.key, '-', '[' .. v)
        else
          b = redis.call('ZLEXCOUNT', sp.key, '-', '(' .. v)
        end
      end
    end
    sp[slot] = b
  end
  return sp[slot]
end
local function strip(members)
  for j = 1, #members do
    local m = members[j]
    members[j] = string.sub(m, string.find(m, '\0', 1, true) + 1)
  end
  return members
end
local function split(reply)
  local ms, ss = {}, {}
  for j = 1, #reply, 2 do
    ms[#ms + 1] = reply[j]
    ss[#ss + 1] = reply[j + 1]
  end
  return ms, ss
end
-- ranks a .. a+count-1 of the span in walk order, with their scores when asked
local function fetch(sp, rev, a, count, scores)
  if count <= 0 then return {}, nil end
  if sp.list then
    local ms, ss = {}, sp.scores and {} or nil
    for r = a + 1, math.min(a + count, #sp.list) do
      ms[#ms + 1] = sp.list[r]
      if ss then ss[#ss + 1] = sp.scores[r] end
    end
    return ms, ss
  end
  local key, reply = sp.key, nil
  if sp.by ~= 'rank' and a < WINDOW_LIMIT then
    -- near the window's start LIMIT finds it as fast as ranks would, without counting first
    if sp.by == 'score' then
      if rev and scores then
        reply = redis.call('ZREVRANGEBYSCORE', key, sp.high, sp.low, 'WITHSCORES', 'LIMIT', a, count)
      elseif rev then
        return redis.call('ZREVRANGEBYSCORE', key, sp.high, sp.low, 'LIMIT', a, count), nil
      elseif scores then
        reply = redis.call('ZRANGEBYSCORE', key, sp.low, sp.high, 'WITHSCORES', 'LIMIT', a, count)
      else
        return redis.call('ZRANGEBYSCORE', key, sp.low, sp.high, 'LIMIT', a, count), nil
      end
      return split(reply)
    end
    local ms
    if rev then
      ms = redis.call('ZREVRANGEBYLEX', key, sp.high, sp.low, 'LIMIT', a, count)
    else
      ms = redis.call('ZRANGEBYLEX', key, sp.low, sp.high, 'LIMIT', a, count)
    end
    if sp.strip then strip(ms) end
    return ms, nil
  end
  local first, last = a, a + count - 1
  if sp.by ~= 'rank' then
    last = math.min(last, card(sp) - 1)
    if last < first then return {}, nil end
    local b = base(sp, rev)
    first, last = first + b, last + b
  end
  if rev and scores then
    reply = redis.call('ZREVRANGE', key, first, last, 'WITHSCORES')
  elseif rev then
    reply = redis.call('ZREVRANGE', key, first, last)
  elseif scores then
    reply = redis.call('ZRANGE', key, first, last, 'WITHSCORES')
  else
    reply = redis.call('ZRANGE', key, first, last)
  end
  if scores then return split(reply) end
  if sp.strip then strip(reply) end
  return reply, nil
end

-- The candidate listing: enumerate(src, fn) and source_card(src).
local enumerate, source_card = nil, nil
if tests_ids then
  local function choose(src)
    if src.chosen == nil then
      local best, best_n = nil, nil
      for _, item in ipairs(src.items) do
        local n = source_card(item)
        if best == nil or n < best_n then best, best_n = item, n end
      end
      src.chosen = best
    end
    return src.chosen
  end
  source_card = function(src)
    if src.card == nil then
      local op = src.op
      if op == '*' then
        src.card = redis.call('ZCARD', ids_key)
      elseif op == '0' then
        src.card = 0
      elseif op == 'l' then
        src.card = card(span_of(src.leaf))
      elseif op == 'p' then
        src.card = source_card(choose(src))
      else
        local n = 0
        for _, item in ipairs(src.items) do n = n + source_card(item) end
        src.card = n
      end
    end
    return src.card
  end
  -- fn(ms, known) for each chunk of the distinct ids the source lists; ``known``: a leaf they pass
  enumerate = function(src, fn, seen)
    local op = src.op
    if op == '0' then return end
    if op == 'p' then return enumerate(choose(src), fn, seen) end
    if op == 'u' then
      seen = seen or {}
      for _, item in ipairs(src.items) do enumerate(item, fn, seen) end
      return
    end
    local sp, known = whole(ids_key), nil
    if op == 'l' then sp, known = span_of(src.leaf), src.leaf end
    local a = 0
    while true do
      local ms = fetch(sp, false, a, CHUNK, false)
      local got = #ms
      if got == 0 then break end
      a = a + got
      if seen then
        local fresh = {}
        for _, m in ipairs(ms) do
          if not seen[m] then
            seen[m] = true
            fresh[#fresh + 1] = m
          end
        end
        ms = fresh
      end
      if #ms > 0 then fn(ms, known) end
      if got < CHUNK then break end
    end
  end
end

if mode == 'ids' then
  local out = {}
  enumerate(source, function(ms, known)
    local pass = check(ms, known, nil)
    for j, m in ipairs(ms) do
      if pass[j] then out[#out + 1] = m end
    end
  end)
  return {out, expired}
end

if mode == 'count' then
  local covering = ARGV[pos + 1] == '1'
  if covering then
    -- the leaf's own cardinality, less its members that are due: O(min(members, due))
    local n = card(span_of(source.leaf))
    local d = n > 0 and exp_live and due() or 0
    if d == 0 then return {n, expired} end
    if d < n then
      -- the due ids are the lowest ranks of the expiry ZSET
      for a = 0, d - 1, CHUNK do
        local ms = redis.call('ZRANGE', exp_key, a, math.min(a + CHUNK, d) - 1)
        chunk, vals = ms, {}
        for j, m in ipairs(ms) do
          if eval(test, j, m, nil) then
            n = n - 1
            note_expired(m)
          end
        end
      end
      return {n, expired}
    end
  end
  local n = 0
  enumerate(source, function(ms, known)
    local pass = check(ms, known, nil)
    for j = 1, #ms do
      if pass[j] then n = n + 1 end
    end
  end)
  return {n, expired}
end

-- mode 'page': walk the ordered segments and return {lead, ids, expired}

local function exact_at(score)
  if injective == 'always' then return true end
  return injective == 'below53' and math.abs(num(score)) < 9007199254740992
end

-- the id-ordered walk: the smallest id-ordered AND part, or the id ZSET
local function id_walk()
  if #walk_leaves == 0 then return whole(ids_key), nil end
  local best, best_n, best_leaf = nil, nil, nil
  for k = 1, #walk_leaves do
    local i = walk_leaves[k]
    local sp = span_of(i)
    local n = #walk_leaves == 1 and 0 or card(sp)
    if best == nil or n < best_n then best, best_n, best_leaf = sp, n, i end
  end
  return best, best_leaf
end

local function nulls_total()
  -- every id has a score unless its order field is null (expired ones count on both sides)
  return redis.call('ZCARD', ids_key) - redis.call('ZCARD', order_key)
end

local segs = {}
if order_kind == 'id' then
  local sp, known = id_walk()
  segs[1] = {sp = sp, rev = desc, known = known, role = 'ids'}
else
  local values, nulls = nil, nil
  if want_values then
    local sp, known, exact = nil, nil, nil
    if window_leaf > 0 then
      local leaf = leaves[window_leaf]
      sp, known = span_of(window_leaf), window_leaf
      -- bounds that each hold one sort value per score make every score between them exact too
      exact = exact_at(leaf.lo) and exact_at(leaf.hi)
    else
      sp = whole(order_key)
    end
    values = {sp = sp, rev = desc, tied = true, known = known, exact = exact, role = 'values'}
  end
  if want_nulls then
    local sp, known = id_walk()
    nulls = {sp = sp, rev = desc, const = true, tied = multi, known = known, nullkey = order_key, role = 'nulls'}
  end
  local first, second = values, nulls
  if desc then first, second = nulls, values end
  if first then segs[#segs + 1] = first end
  if second then segs[#segs + 1] = second end
end

-- When the candidates are far fewer than the walk would visit, list and sort them instead.
local sort = false
if source.op ~= '*' and #segs > 0 then
  local main = segs[1]
  for k = 1, #segs do
    if segs[k].role ~= 'nulls' then main = segs[k] end
  end
  if not trivial(test, main.known) then
    local c = source_card(source)
    local walk_n = card(main.sp)
    if take < 0 then
      sort = c < walk_n
    else
      sort = c * c < (skip + take) * walk_n
    end
  end
end
if sort then
  local list = {}
  enumerate(source, function(ms, known)
    local pass = check(ms, known, nil)
    for j, m in ipairs(ms) do
      if pass[j] then list[#list + 1] = m end
    end
  end)
  if order_kind == 'id' then
    table.sort(list, function(a, b)
      if desc then return id_before(b, a) end
      return id_before(a, b)
    end)
    segs = {{sp = {list = list}, rev = desc, checked = true, role = 'ids'}}
  else
    local pairs_, nulls = {}, {}
    for k = 1, #list, CHUNK do
      local part = {unpack(list, k, math.min(k + CHUNK - 1, #list))}
      local scores = redis.call('ZMSCORE', order_key, unpack(part))
      for j, m in ipairs(part) do
        if scores[j] then
          pairs_[#pairs_ + 1] = {m, num(scores[j]), scores[j]}
        else
          nulls[#nulls + 1] = m
        end
      end
    end
    table.sort(pairs_, function(x, y)
      if x[2] ~= y[2] then
        if desc then return x[2] > y[2] end
        return x[2] < y[2]
      end
      if desc then return before(y[1], x[1]) end
      return before(x[1], y[1])
    end)
    table.sort(nulls, function(a, b)
      if desc then return id_before(b, a) end
      return id_before(a, b)
    end)
    local members, scores = {}, {}
    for k, p in ipairs(pairs_) do
      members[k] = p[1]
      scores[k] = p[3]
    end
    local values = {sp = {list = members, scores = scores}, rev = desc, tied = true, checked = true, role = 'values'}
    local nullseg = {sp = {list = nulls}, rev = desc, const = true, tied = multi, checked = true, role = 'nulls'}
    segs = {}
    if desc then
      if want_nulls then segs[#segs + 1] = nullseg end
      if want_values then segs[#segs + 1] = values end
    else
      if want_values then segs[#segs + 1] = values end
      if want_nulls then segs[#segs + 1] = nullseg end
    end
  end
end
-- whether a segment may hold tie groups: one of ids without a sort value, or of values where a
-- score may hold several sort values (the walk reads their scores: see ``scores`` below)
local grouped = false
for k = 1, #segs do
  local seg = segs[k]
  if seg.const or (seg.tied and injective ~= 'always' and not seg.exact) then grouped = true end
end


-- Positions as ranks in a segment's walk order, built for the pages that start past rank 0 (a
-- cursor, a skip): id_rank (through an id), before_score (strictly before a score),
-- count_score (at a score) and through_member (through a record).
local id_rank, before_score, count_score, through_member = nil, nil, nil, nil
if cursor ~= '' or skip > 0 then
  -- a count of ZSET members (absolute) as a rank within the span's window
  local function relative(sp, rev, count)
    local rank = count - base(sp, rev)
    if rank < 0 then return 0 end
    local n = card(sp)
    if rank > n then return n end
    return rank
  end
  id_rank = function(seg, id)
    local sp = seg.sp
    if sp.list then
      local n = 0
      for _, m in ipairs(sp.list) do
        if seg.rev then
          if not id_before(m, id) then n = n + 1 end
        elseif not id_before(id, m) then
          n = n + 1
        end
      end
      return n
    end
    local count
    if id_int then
      if seg.rev then count = redis.call('ZCOUNT', sp.key, id, '+inf')
      else count = redis.call('ZCOUNT', sp.key, '-inf', id) end
    elseif seg.rev then
      count = redis.call('ZLEXCOUNT', sp.key, '[' .. id, '+')
    else
      count = redis.call('ZLEXCOUNT', sp.key, '-', '[' .. id)
    end
    if sp.by == 'rank' then return count end
    return relative(sp, seg.rev, count)
  end
  -- members whose score comes strictly before ``score`` in walk order
  before_score = function(seg, score)
    local sp, v = seg.sp, num(score)
    if sp.list then
      local n = 0
      for _, s in ipairs(sp.scores) do
        local w = num(s)
        if (seg.rev and w > v) or (not seg.rev and w < v) then n = n + 1 end
      end
      return n
    end
    local count
    if seg.rev then count = redis.call('ZCOUNT', sp.key, '(' .. score, '+inf')
    else count = redis.call('ZCOUNT', sp.key, '-inf', '(' .. score) end
    if sp.by == 'rank' then return count end
    return relative(sp, seg.rev, count)
  end
  count_score = function(seg, score)
    local sp, v = seg.sp, num(score)
    if sp.list then
      local n = 0
      for _, s in ipairs(sp.scores) do
        if num(s) == v then n = n + 1 end
      end
      return n
    end
    return redis.call('ZCOUNT', sp.key, score, score)
  end
  -- members up to and including the record (its score, then its id) in walk order
  through_member = function(seg, id, score)
    local sp, v = seg.sp, num(score)
    if sp.list then
      local n = 0
      for k, m in ipairs(sp.list) do
        local w = num(sp.scores[k])
        local ahead
        if w ~= v then
          ahead = (seg.rev and w > v) or (not seg.rev and w < v)
        elseif seg.rev then
          ahead = not before(m, id)
        else
          ahead = not before(id, m)
        end
        if ahead then n = n + 1 end
      end
      return n
    end
    local rank
    if seg.rev then rank = redis.call('ZREVRANK', sp.key, id) else rank = redis.call('ZRANK', sp.key, id) end
    if sp.by == 'rank' then return rank + 1 end
    return relative(sp, seg.rev, rank + 1)
  end
end

local out, nout, lead, matched = {}, 0, 0, 0
local grp, grp_id, last_id = nil, nil, nil
local started, done = false, false
local limit = -1
local start_seg, start_rank = 1, 0

if cursor ~= '' then
  if not redis.call('ZSCORE', ids_key, cursor) then return {-1, {}, expired} end
  local extra = 0
  local vi, ni = nil, nil
  for k, seg in ipairs(segs) do
    if seg.role == 'nulls' then ni = k else vi = k end
  end
  if order_kind == 'id' then
    start_rank = id_rank(segs[1], cursor)
  else
    local zs = redis.call('ZSCORE', order_key, cursor)
    if zs and vi then
      start_seg = vi
      local seg = segs[vi]
      if exact_at(zs) then
        -- one score, one value: start right after the cursor within its score
        start_rank = through_member(seg, cursor, zs)
      else
        start_rank = before_score(seg, zs)
        extra = count_score(seg, zs)
      end
    elseif zs then
      -- only records without a value can match: ascending they all follow the cursor
      start_seg = desc and #segs + 1 or 1
    elseif ni then
      start_seg = ni
      if multi then
        local seg = segs[ni]
        extra = seg.sp.list and #seg.sp.list or math.max(nulls_total(), 0)
      else
        start_rank = id_rank(segs[ni], cursor)
      end
    else
      start_seg = desc and 1 or #segs + 1
    end
  end
  if take >= 0 then limit = skip + take + extra end
  skip = 0
elseif take >= 0 then
  limit = skip + take
end

-- a member met in order, for segments where it may open or join a tie group
local visit = nil
if grouped then
  local function same(a, b)
    return a ~= nil and b ~= nil and a[1] == b[1] and a[2] == b[2]
  end
  visit = function(si, seg, m, sc)
    -- a tie group is one segment and one numeric score (so that -0 and 0 are one group)
    local gid = nil
    if seg.const then
      if seg.tied then gid = {si, 0} end
    elseif seg.tied and sc ~= nil and not exact_at(sc) then
      gid = {si, num(sc)}
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
          for _, x in ipairs(grp) do
            nout = nout + 1
            out[nout] = x
          end
          lead = #grp
        end
      end
      nout = nout + 1
      out[nout] = m
      last_id = gid
      matched = matched + 1
    elseif same(gid, last_id) then
      nout = nout + 1
      out[nout] = m
    else
      done = true
    end
  end
end

-- skip members without visiting them, where nothing in the segment needs checking: for pages
-- that skip (a cursor page starts at the cursor, skipping nothing)
local jump = nil
if skip > 0 then
  jump = function(seg)
    local want = skip - matched
    if want <= 0 or seg.nullkey then return 0 end
    if not seg.checked and (not trivial(test, seg.known) or (exp_live and due() > 0)) then return 0 end
    local n = card(seg.sp)
    if want >= n then
      matched = matched + n
      grp, grp_id = nil, nil
      return n
    end
    if seg.const and seg.tied then return 0 end  -- one tie group: its members are collected
    if not seg.tied or seg.const or injective == 'always' or seg.exact then
      matched = matched + want
      return want
    end
    local _, ss = fetch(seg.sp, seg.rev, want, 1, true)
    local sc = ss[1]
    if exact_at(sc) then
      matched = matched + want
      return want
    end
    local b = before_score(seg, sc)
    matched = matched + b
    return b
  end
end

for si = start_seg, #segs do
  local seg = segs[si]
  local rank = 0
  if cursor ~= '' then
    if si == start_seg then rank = start_rank end
  elseif jump then
    rank = jump(seg)
  end
  if seg.nullkey then
    seg.left = nulls_total()
    if seg.left <= 0 then rank = -1 end
  end
  local scores = seg.tied and not seg.const and injective ~= 'always' and not seg.exact
  local checks = not seg.checked and (exp_live or seg.nullkey ~= nil or not trivial(test, seg.known))
  local grow = 1
  while rank >= 0 and not done do
    local size = CHUNK
    if limit >= 0 then
      local left = limit - matched + 1
      if checks then left = left * 2 * grow end
      size = math.max(8, math.min(CHUNK, left))
    end
    local ms, ss = fetch(seg.sp, seg.rev, rank, size, scores)
    local got = #ms
    if got == 0 then break end
    local pass, nulls = nil, 0
    if checks then pass, nulls = check(ms, seg.known, seg.nullkey) end
    if seg.const or scores then
      for j = 1, got do
        if pass == nil or pass[j] then
          visit(si, seg, ms[j], ss and ss[j])
          if done then break end
        end
      end
    elseif pass == nil then
      -- nothing to check and no tie group: skip, then take, whole runs of members at once
      local a = 1
      if matched < skip then
        a = math.min(skip - matched, got) + 1
        matched = matched + a - 1
      end
      local b = got
      if limit >= 0 then b = math.min(got, a - 1 + limit - matched) end
      if b >= a then
        started = true
        last_id = nil
        if nout == 0 and a == 1 then
          -- the page starts with this chunk: the chunk is the page, cut to size
          for j = got, b + 1, -1 do ms[j] = nil end
          out = ms
        elseif nout == 0 then
          out = {unpack(ms, a, b)}
        else
          for j = a, b do out[nout + j - a + 1] = ms[j] end
        end
        nout = nout + b - a + 1
        matched = matched + b - a + 1
      end
      if b < got then done = true end
    else
      -- no member here can open a tie group: what ``visit`` does, inline
      for j = 1, got do
        if pass == nil or pass[j] then
          if matched < skip then
            matched = matched + 1
          elseif limit < 0 or matched < limit then
            started = true
            nout = nout + 1
            out[nout] = ms[j]
            last_id = nil
            matched = matched + 1
          else
            done = true
            break
          end
        end
      end
    end
    rank = rank + got
    if got < size then break end
    if seg.left then
      seg.left = seg.left - nulls
      if seg.left <= 0 then break end
    end
    if started and limit >= 0 and matched >= limit and last_id == nil then done = true end
    grow = grow * 2
  end
  if started and limit >= 0 and matched >= limit then done = true end
  if done then break end
end
return {lead, out, expired}
