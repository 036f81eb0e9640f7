--! include state.lua
-- Every write of the ORM: a batch of operations applied as one atomic step.
--
-- Pass one reads what each operation needs (records, state lines, claims), checks it against an
-- in-memory overlay that earlier operations of the batch have already changed, and queues the
-- commands; if any operation fails, nothing is written. Pass two runs the queued commands.
-- redis_orm_async/_engine/writes.py builds the arguments and holds the same logic in Python for
-- servers that refuse scripts.
--
-- KEYS: the id ZSET of each model in the batch (it routes the call on a cluster).
-- ARGV: #models, then each model's words (see read_model); then sweep limit; then either 'B' and
-- a bulk create (see bulk_create: every op creates an id the client generated, of one model), or
-- '-', #ops and the ops:
--   C model id ttl_ms fresh #fields (name text)... line facts  create (fails if the id is live);
--                                                              facts: token score lex of each fact field
--   U model locator expect ttl #changes (name op value token score lex)... create?
--                                                              update, or upsert when create? is 'C ...'
--   D model locator expect                                     delete, answering the old hash
--   T model locator ttl_ms                                     touch: a fresh expiry
--   S model limit                                              sweep records that are due
--   X model #ids id...                                         clean these ids if they are gone
--   Y model key limit                                          delete the records of one equality
--                                                              index key (up to limit of them)
--   R model id expect state_line                               repair: rebuild a record's entries
--   P model key kind #members member...                        repair: prune entries nobody implies
-- locator: 'i' id | 'c' claim key; expect: '-' or #fields and the hash as the caller read it;
-- ttl: 'k' keep, 'p' persist, or milliseconds; change op: 's' set, 'n' null, 'i' add an integer;
-- fresh: 'n' for an id the client generated (nothing to read), '-' otherwise.
-- Answer: {'ok', result...} or {'err', op, code, detail...}.

local position = 0
local function arg()
  position = position + 1
  return ARGV[position]
end
local function int_arg() return tonumber(arg()) end

local clock = nil
local function now_ms()
  if not clock then
    local time = redis.call('TIME')
    clock = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  end
  return clock
end

local models = {}
for i = 1, int_arg() do
  local model, after = read_model(position + 1)
  models[i] = model
  position = after - 1
end
local sweep_limit = int_arg()
local bulk = arg() == 'B'

local queued = {}
local function queue(...) queued[#queued + 1] = {...} end

local holders = {}
local function holder_of(claim)
  local holder = holders[claim]
  if holder == nil then
    holder = redis.call('GET', claim)
    holders[claim] = holder
  end
  return holder
end

-- whether any record of the model may expire: only then is its expiry ZSET read
local function expiring(model)
  if model.expiring == nil then model.expiring = redis.call('EXISTS', model.exp) == 1 end
  return model.expiring
end

local function read_hash_into(rec)
  local flat = redis.call('HGETALL', rec.key)
  local hash = {}
  for i = 1, #flat, 2 do hash[flat[i]] = flat[i + 1] end
  rec.hash, rec.exists = hash, #flat > 0
end

-- the overlay: one table per record touched, loaded once and changed as operations apply
-- (``with_hash``: read the whole hash now, which also tells whether the record exists)
local records = {}
local function record(model, id, with_hash)
  local cache_key = model.base .. '\n' .. id
  local found = records[cache_key]
  if found then
    if with_hash and found.hash == nil then read_hash_into(found) end
    return found
  end
  local line = redis.call('HGET', model.st, id)
  local expiry = false
  if expiring(model) then expiry = redis.call('ZSCORE', model.exp, id) end
  found = {
    model = model, id = id, key = model.base .. ':r:' .. escape(id),
    facts = parse_facts(line), line = line or '',
    exp = expiry and tonumber(expiry) or nil,
  }
  if with_hash then
    read_hash_into(found)
  else
    found.exists = redis.call('EXISTS', found.key) == 1
  end
  records[cache_key] = found
  return found
end

local function hash_of(rec)
  if rec.hash == nil then
    if rec.exists then read_hash_into(rec) else rec.hash = {} end
  end
  return rec.hash
end

local function flat_hash(rec)
  local flat = {}
  for name, text in pairs(hash_of(rec)) do
    flat[#flat + 1] = name
    flat[#flat + 1] = text
  end
  return flat
end

-- a record with nothing but leftovers: its hash is gone (expired, evicted, deleted by hand)
local function leftovers(rec)
  if rec.exists then return false end
  if rec.listed == nil then rec.listed = redis.call('ZSCORE', rec.model.ids, rec.id) ~= false end
  return rec.line ~= '' or rec.exp ~= nil or rec.listed
end

local failure = nil
local function fail(index, code, ...)
  if not failure then failure = {'err', index, code, ...} end
  return false
end

local function claims_of(rec)
  if not rec.exists then return {} end
  local _, claims = entries(rec.model, rec.id, rec.facts)
  return claims
end

-- Queue the index moves from a record's old entries to its new ones: remove what the new ones
-- drop, add what they add (all of them when ``add_all``: a rebuild cannot trust the old ones),
-- and release the old claims the record still holds.
local function move_entries(id, old_zsets, old_claims, new_zsets, new_claims, add_all)
  for key, entry in pairs(old_zsets) do
    local after = new_zsets[key]
    if not after or after[1] ~= entry[1] then queue('ZREM', key, entry[1]) end
  end
  for key, entry in pairs(new_zsets) do
    local before = old_zsets[key]
    if add_all or not before or before[1] ~= entry[1] or before[2] ~= entry[2] then
      queue('ZADD', key, entry[2], entry[1])
    end
  end
  for claim in pairs(old_claims) do
    if not new_claims[claim] and holder_of(claim) == id then
      queue('DEL', claim)
      holders[claim] = false
    end
  end
end

-- Move a record from its current state to a new one: nil facts removes it. Checks the unique
-- claims it wants (a claim held by another live record that still holds the value is a
-- violation; any other holder is stale and taken over), then queues every change.
-- ``only``: the fields whose facts may change (an update's), so that the entries of the others are
-- neither derived nor compared; nil for a create, a removal or a rebuild.
local function transition(index, rec, new_facts, new_exp, hash_writes, hash_deletes, fresh, new_line, only)
  local model, id = rec.model, rec.id
  local old_zsets, old_claims = {}, {}
  if rec.exists or leftovers(rec) then old_zsets, old_claims = entries(model, id, rec.facts, only) end
  local new_zsets, new_claims = {}, {}
  if new_facts then new_zsets, new_claims = entries(model, id, new_facts, only) end

  for claim, constraint in pairs(new_claims) do
    if rec.exists and old_claims[claim] then
      holders[claim] = id  -- a live record holds the claims its state lists
    else
      local holder = holder_of(claim)
      if holder and holder ~= id then
        local other = record(model, holder)
        if other.exists and claims_of(other)[claim] then
          return fail(index, 'unique', model.base, constraint)
        end
      end
    end
  end

  if not new_facts then
    if rec.exists then queue('DEL', rec.key) end
  elseif fresh then
    local mapping = {'HSET', rec.key, 'id', id}
    for i = 1, #hash_writes, 2 do
      mapping[#mapping + 1] = hash_writes[i]
      mapping[#mapping + 1] = hash_writes[i + 1]
    end
    queue(unpack(mapping))
  else
    if #hash_writes > 0 then queue('HSET', rec.key, unpack(hash_writes)) end
    if #hash_deletes > 0 then queue('HDEL', rec.key, unpack(hash_deletes)) end
  end

  move_entries(id, old_zsets, old_claims, new_zsets, new_claims, false)
  local expiry_changed = new_facts and new_exp ~= rec.exp
  for claim in pairs(new_claims) do
    if holders[claim] ~= id then
      if new_exp then queue('SET', claim, id, 'PXAT', new_exp) else queue('SET', claim, id) end
      holders[claim] = id
    elseif expiry_changed then
      if new_exp then queue('PEXPIREAT', claim, new_exp) else queue('PERSIST', claim) end
    end
  end
  if expiry_changed and only then  -- the claims no change touched still follow the new expiry
    local _, all_claims = entries(model, id, new_facts)
    for claim in pairs(all_claims) do
      if not new_claims[claim] then
        if new_exp then queue('PEXPIREAT', claim, new_exp) else queue('PERSIST', claim) end
      end
    end
  end

  if new_facts then
    if expiry_changed or (fresh and new_exp) then
      if new_exp then
        queue('PEXPIREAT', rec.key, new_exp)
        queue('ZADD', model.exp, new_exp, id)
      else
        if not fresh then queue('PERSIST', rec.key) end
        queue('ZREM', model.exp, id)
      end
    end
    local line = new_line or format_facts(model, new_facts)
    if line ~= rec.line then
      if line == '' then queue('HDEL', model.st, id) else queue('HSET', model.st, id, line) end
    end
    rec.line, rec.exp, rec.listed, rec.exists, rec.facts = line, new_exp, true, true, new_facts
  else
    if rec.exp then queue('ZREM', model.exp, id) end
    if rec.line ~= '' then queue('HDEL', model.st, id) end
    rec.line, rec.exp, rec.listed, rec.exists, rec.facts, rec.hash = '', nil, false, false, {}, {}
    model.removed = true
  end
  return true
end

local function clean(index, rec)
  if leftovers(rec) then return transition(index, rec, nil, nil, {}, {}, false) end
  return true
end

local function read_hash(count)
  local expected = {}
  for _ = 1, count do
    local name = arg()
    expected[name] = arg()
  end
  return expected
end

local function same_hash(actual, expected, count)
  local seen = 0
  for name, text in pairs(actual) do
    if expected[name] ~= text then return false end
    seen = seen + 1
  end
  return seen == count
end

local function expiry_of(rec, ttl)
  if ttl == 'k' then return rec.exp end
  local expiry = nil
  if ttl ~= 'p' then expiry = now_ms() + tonumber(ttl) end
  return capped(rec.model, rec.id, expiry)
end

-- the record a locator names, or nil; a claim must point at a live record that still holds it
local function locate(model, kind, value)
  if kind == 'i' then return record(model, value, true) end
  local holder = holder_of(value)
  if not holder then return nil end
  local rec = record(model, holder, true)
  if rec.exists and not claims_of(rec)[value] then return nil end
  return rec
end

local function read_create(model)
  local spec = {id = arg(), ttl = arg(), fresh = arg() == 'n', writes = {}}
  for _ = 1, int_arg() do
    spec.writes[#spec.writes + 1] = arg()
    spec.writes[#spec.writes + 1] = arg()
  end
  spec.line = arg()
  local facts = {}
  for _, name in ipairs(model.facts) do facts[name] = {t = arg(), s = arg(), x = arg()} end
  spec.facts = facts
  return spec
end

-- The first record of an empty model: every index the model has is complete, so its marker
-- ('<base>:ix', see _engine/built.py) names them all (and '~since', so that a model with no index
-- has a marker too); reindex and repair name those added later.
local function mark_empty_model(model)
  if model.checked_empty then return end
  model.checked_empty = true
  local names = {'~since'}
  for _, name in ipairs(model.equality) do names[#names + 1] = 'i:' .. name end
  for _, name in ipairs(model.range) do names[#names + 1] = 'z:' .. name end
  for _, name in ipairs(model.lex) do names[#names + 1] = 'l:' .. name end
  for _, unique in ipairs(model.uniques) do names[#names + 1] = 'u:' .. unique.name end
  if redis.call('EXISTS', model.ids) == 1 then return end
  local command = {'HSET', model.base .. ':ix'}
  for _, name in ipairs(names) do
    command[#command + 1] = name
    command[#command + 1] = tostring(now_ms())
  end
  queue(unpack(command))
end

local function create(index, model, spec)
  mark_empty_model(model)
  local cache_key = model.base .. '\n' .. spec.id
  if spec.fresh and not records[cache_key] then
    -- an id the client just generated: no record, and nothing left of one, can have it
    records[cache_key] = {
      model = model, id = spec.id, key = model.base .. ':r:' .. escape(spec.id),
      exists = false, facts = {}, line = '', listed = false,
    }
  end
  local rec = record(model, spec.id)
  if rec.exists then return fail(index, 'exists', model.base, spec.id) end
  local exp = nil
  if spec.ttl ~= '' then exp = now_ms() + tonumber(spec.ttl) end
  exp = capped(model, spec.id, exp)
  if not transition(index, rec, spec.facts, exp, spec.writes, {}, true, spec.line) then return false end
  local hash = {id = spec.id}
  for i = 1, #spec.writes, 2 do hash[spec.writes[i]] = spec.writes[i + 1] end
  rec.hash = hash
  return rec
end

local function read_expect()
  local expect = arg()
  if expect == '-' then return nil, 0 end
  local count = tonumber(expect)
  return read_hash(count), count
end

local function update(index, model)
  local kind, value = arg(), arg()
  local expected, expected_count = read_expect()
  local ttl = arg()
  local changes = {}
  for _ = 1, int_arg() do
    changes[#changes + 1] = {name = arg(), op = arg(), value = arg(), t = arg(), s = arg(), x = arg()}
  end
  local spec = nil
  if arg() == 'C' then spec = read_create(model) end
  local rec = locate(model, kind, value)
  if not rec or not rec.exists then
    if rec and not clean(index, rec) then return false end
    if not spec then return false end
    local created = create(index, model, spec)
    if not created then return false end
    return flat_hash(created)
  end
  local hash = hash_of(rec)
  if expected and not same_hash(hash, expected, expected_count) then
    return fail(index, 'conflict', model.base, rec.id)
  end
  local facts = {}
  for name, fact in pairs(rec.facts) do facts[name] = fact end
  local new_hash = {}
  for name, text in pairs(hash) do new_hash[name] = text end
  for _, change in ipairs(changes) do
    local name = change.name
    if change.op == 'i' then
      local current = new_hash[name]
      if current == nil then return fail(index, 'null', model.base, name) end
      if not is_int_text(current) then return fail(index, 'not_int', model.base, name) end
      local text = add_int(current, change.value)
      new_hash[name] = text
      if model.needs[name] then facts[name] = int_facts(model, name, text) end
    else
      if change.op == 's' then new_hash[name] = change.value else new_hash[name] = nil end
      if model.needs[name] then facts[name] = {t = change.t, s = change.s, x = change.x} end
    end
  end
  local writes, deletes = {}, {}
  for name, text in pairs(new_hash) do
    if hash[name] ~= text then
      writes[#writes + 1] = name
      writes[#writes + 1] = text
    end
  end
  for name in pairs(hash) do
    if new_hash[name] == nil then deletes[#deletes + 1] = name end
  end
  local only = {}
  for _, change in ipairs(changes) do only[change.name] = true end
  if not transition(index, rec, facts, expiry_of(rec, ttl), writes, deletes, false, nil, only) then return false end
  rec.hash = new_hash
  return flat_hash(rec)
end

-- the live record a locator names, or nil; what is left of a gone one is cleaned on the way
local function live(index, model, kind, value)
  local rec = locate(model, kind, value)
  if rec and not rec.exists then
    clean(index, rec)
    return nil
  end
  return rec
end

local function delete(index, model)
  local kind, value = arg(), arg()
  local expected, expected_count = read_expect()
  local rec = live(index, model, kind, value)
  if not rec then return false end
  local old = flat_hash(rec)
  if expected and not same_hash(hash_of(rec), expected, expected_count) then
    return fail(index, 'conflict', model.base, rec.id)
  end
  if not transition(index, rec, nil, nil, {}, {}, false) then return false end
  return old
end

local function touch(index, model)
  local kind, value = arg(), arg()
  local ttl = arg()
  local rec = live(index, model, kind, value)
  if not rec then return false end
  if not transition(index, rec, rec.facts, expiry_of(rec, ttl), {}, {}, false, rec.line, {}) then return false end
  return flat_hash(rec)
end

-- Remove the leftovers of due records; a live one keeps its entries, its expiry entry mended.
local function sweep(index, model, limit)
  if not expiring(model) then return {0, 0} end
  local now = now_ms()
  local due = redis.call('ZRANGEBYSCORE', model.exp, '-inf', '(' .. now, 'LIMIT', 0, limit)
  local swept = 0
  for _, id in ipairs(due) do
    local rec = record(model, id)
    if rec.exists then
      local left = redis.call('PTTL', rec.key)
      if left == -1 then
        queue('ZREM', model.exp, id)
        rec.exp = nil
      elseif left > 0 then
        rec.exp = now + left
        queue('ZADD', model.exp, rec.exp, id)
      end
    elseif leftovers(rec) then
      clean(index, rec)
      swept = swept + 1
    end
  end
  return {swept, #due}
end

local function clean_ids(index, model)
  local cleaned = 0
  for _ = 1, int_arg() do
    local rec = record(model, arg())
    if leftovers(rec) then
      clean(index, rec)
      cleaned = cleaned + 1
    end
  end
  return cleaned
end

-- Delete the first ``limit`` records an equality index key holds, each only if its state still
-- puts it there (an entry left behind by drift is removed instead): a delete_many of an exact
-- equality, one round trip per batch. Answers {deleted, examined}.
local function delete_indexed(index, model, key, limit)
  local ids = redis.call('ZRANGE', key, 0, limit - 1)
  local deleted = 0
  for _, id in ipairs(ids) do
    local rec = record(model, id, true)
    local zsets = entries(model, id, rec.facts)
    local held = zsets[key] ~= nil
    if rec.exists and held then
      if not transition(index, rec, nil, nil, {}, {}, false) then return false end
      deleted = deleted + 1
    elseif rec.exists then
      queue('ZREM', key, id)  -- the record no longer has this value: a stale entry
    else
      clean(index, rec)
      if not held then queue('ZREM', key, id) end  -- gone, and its state never listed it here
    end
  end
  return {deleted, #ids}
end

-- Rebuild a live record's entries, claims and state line from its hash (``line``: the facts the
-- caller computed from the hash it read). Answers 'gone', 'changed' (read it again), or 'ok' and
-- the constraints whose value another live record holds (duplicates only a person can settle).
local function rebuild(index, model)
  local id = arg()
  local expected, expected_count = read_expect()
  local facts = parse_facts(arg())
  local rec = record(model, id, true)
  if not rec.exists then
    clean(index, rec)
    return {'gone'}
  end
  if not same_hash(hash_of(rec), expected, expected_count) then return {'changed'} end
  local old_zsets, old_claims = entries(model, id, rec.facts)
  local new_zsets, new_claims = entries(model, id, facts)
  move_entries(id, old_zsets, old_claims, new_zsets, new_claims, true)
  local left = redis.call('PTTL', rec.key)
  local exp = nil
  if left > 0 then
    exp = now_ms() + left
    queue('ZADD', model.exp, exp, id)
  elseif rec.exp then
    queue('ZREM', model.exp, id)
  end
  local answer = {'ok'}
  for claim, constraint in pairs(new_claims) do
    local holder = holder_of(claim)
    local other = nil
    if holder and holder ~= id then other = record(model, holder) end
    if other and other.exists and claims_of(other)[claim] then
      answer[#answer + 1] = constraint
    else
      if exp then queue('SET', claim, id, 'PXAT', exp) else queue('SET', claim, id) end
      holders[claim] = id
    end
  end
  local line = format_facts(model, facts)
  if line == '' then queue('HDEL', model.st, id) else queue('HSET', model.st, id, line) end
  rec.facts, rec.line, rec.exp = facts, line, exp
  return answer
end

-- Remove the members of one index key (kind 'z', a lex ZSET 'l'), claims ('c'), state lines
-- ('s') or expiry entries ('e') that no record's state implies any more.
local function prune(index, model)
  local key, kind = arg(), arg()
  local removed = 0
  for _ = 1, int_arg() do
    local member = arg()
    local owner = member
    if kind == 'l' then owner = string.sub(member, (string.find(member, '\0', 1, true) or 0) + 1) end
    if kind == 'c' then
      local holder = holder_of(member)
      if holder then
        local rec = record(model, holder)
        if not rec.exists or not claims_of(rec)[member] then
          if not rec.exists then clean(index, rec) end
          if holder_of(member) then
            queue('DEL', member)
            holders[member] = false
            removed = removed + 1
          end
        end
      end
    else
      local rec = record(model, owner)
      if not rec.exists then
        if leftovers(rec) then clean(index, rec) end
        if kind == 'z' or kind == 'l' then queue('ZREM', key, member) end
        removed = removed + 1
      elseif kind == 'z' or kind == 'l' then
        local zsets = entries(model, owner, rec.facts)
        local entry = zsets[key]
        if not entry or entry[1] ~= member then
          queue('ZREM', key, member)
          removed = removed + 1
        end
      elseif kind == 'e' and redis.call('PTTL', rec.key) < 0 then
        queue('ZREM', model.exp, owner)
        rec.exp = nil
        removed = removed + 1
      end
    end
  end
  return removed
end

-- Creates of ids the client generated, of one model: nothing to read but the claims they take
-- (one MGET), and one command per index key, not one per record. The same entries, claims and
-- state lines as ``create``, by the same derivation.
local SLICE = 3000
local function call_sliced(name, key, args, step)
  for first = 1, #args, SLICE do
    local last = math.min(first + SLICE - 1, #args)
    last = last - (last - first + 1) % step
    if key then redis.call(name, key, unpack(args, first, last))
    else redis.call(name, unpack(args, first, last)) end
  end
end

-- ARGV[first .. last] as one command's tail, sliced so that no call unpacks more than SLICE words
-- (``step``: words per entry, so that no slice splits one)
local function call_range(name, key, first, last, step)
  while first <= last do
    local stop = math.min(first + SLICE - 1, last)
    stop = stop - (stop - first + 1) % step
    redis.call(name, key, unpack(ARGV, first, stop))
    first = stop + 1
  end
end

-- The bulk create ('B'): records of one model whose ids the client generated, so no record,
-- and nothing left of one, can have them. The client spells out every entry, so the script
-- reads nothing but the claims and writes straight from ARGV:
--   #records, then per record: key ttl #words words (its hash, 'id' and the id first);
--   #words (id line)... for the state lines; #groups, then per group: key #words (score member)...;
--   #words (claim id)..., then each claim's constraint.
local function bulk_create(model)
  local at = position + 1
  local count = tonumber(ARGV[at])
  at = at + 1
  local starts = {}
  for index = 1, count do
    starts[index] = at
    at = at + 3 + tonumber(ARGV[at + 2])
  end
  local states, groups = at, at + 1 + tonumber(ARGV[at])
  at = groups + 1
  local group_starts = {}
  for index = 1, tonumber(ARGV[groups]) do
    group_starts[index] = at
    at = at + 2 + tonumber(ARGV[at + 1])
  end
  local claims = at
  local claim_words = tonumber(ARGV[claims])
  local constraints = claims + claim_words
  position = constraints + claim_words / 2

  local function owner_of(id)
    for index, first in ipairs(starts) do
      if ARGV[first + 4] == id then return index end
    end
    return 0
  end
  local keys, seen = {}, {}
  for i = 1, claim_words / 2 do
    local key = ARGV[claims + 2 * i - 1]
    if seen[key] then return {'err', owner_of(ARGV[claims + 2 * i]), 'unique', model.base, ARGV[constraints + i]} end
    seen[key] = true
    keys[i] = key
  end
  for first = 1, #keys, SLICE do
    local last = math.min(first + SLICE - 1, #keys)
    local found = redis.call('MGET', unpack(keys, first, last))
    for i = first, last do
      local holder = found[i - first + 1]
      if holder then
        local key = keys[i]
        local other = record(model, holder)
        if other.exists and claims_of(other)[key] then
          return {'err', owner_of(ARGV[claims + 2 * i]), 'unique', model.base, ARGV[constraints + i]}
        end
      end
    end
  end

  mark_empty_model(model)
  local expiries, expiry_of = {}, {}
  for _, first in ipairs(starts) do
    local key, ttl, id = ARGV[first], ARGV[first + 1], ARGV[first + 4]
    call_range('HSET', key, first + 3, first + 2 + tonumber(ARGV[first + 2]), 2)
    local exp = nil
    if ttl ~= '' then exp = now_ms() + tonumber(ttl) end
    exp = capped(model, id, exp)
    if exp then
      redis.call('PEXPIREAT', key, exp)
      expiries[#expiries + 1] = exp
      expiries[#expiries + 1] = id
      expiry_of[id] = exp
    end
  end
  if #expiries == 0 then
    if claim_words > 0 then
      for first = claims + 1, claims + claim_words, SLICE do
        local last = math.min(first + SLICE - 1, claims + claim_words)
        last = last - (last - first + 1) % 2
        redis.call('MSET', unpack(ARGV, first, last))
      end
    end
  else
    for i = 1, claim_words / 2 do
      local key, id = ARGV[claims + 2 * i - 1], ARGV[claims + 2 * i]
      local exp = expiry_of[id]
      if exp then redis.call('SET', key, id, 'PXAT', exp) else redis.call('SET', key, id) end
    end
    call_sliced('ZADD', model.exp, expiries, 2)
  end
  for _, first in ipairs(group_starts) do
    call_range('ZADD', ARGV[first], first + 2, first + 1 + tonumber(ARGV[first + 1]), 2)
  end
  call_range('HSET', model.st, states + 1, states + tonumber(ARGV[states]), 2)
  local results = {'ok'}
  for index = 1, count do results[index + 1] = true end
  return results
end

if bulk then
  local reply = bulk_create(models[1])
  if reply[1] == 'err' then return reply end
  if sweep_limit > 0 then
    for _, model in ipairs(models) do sweep(0, model, sweep_limit) end
  end
  for _, command in ipairs(queued) do redis.call(unpack(command)) end
  return reply
end

local results = {'ok'}
local creates_only = true
for index = 1, int_arg() do
  local kind = arg()
  if kind ~= 'C' then creates_only = false end
  local model = models[int_arg()]
  local result
  if kind == 'C' then
    result = create(index, model, read_create(model)) and true
  elseif kind == 'U' then
    result = update(index, model)
  elseif kind == 'D' then
    result = delete(index, model)
  elseif kind == 'T' then
    result = touch(index, model)
  elseif kind == 'S' then
    result = sweep(index, model, int_arg())
  elseif kind == 'X' then
    result = clean_ids(index, model)
  elseif kind == 'Y' then
    result = delete_indexed(index, model, arg(), int_arg())
  elseif kind == 'R' then
    result = rebuild(index, model)
  elseif kind == 'P' then
    result = prune(index, model)
  else
    return {'err', index, 'unknown_op', kind}
  end
  if failure then return failure end
  results[#results + 1] = result
end
if sweep_limit > 0 then
  for _, model in ipairs(models) do sweep(0, model, sweep_limit) end
end
-- Creates of distinct records touch distinct members, so their ZADD and HSET commands commute:
-- a batch of creates sends one command per key (in slices Lua's unpack can take), not one per
-- record; any other batch runs its commands in the order they were queued.
local function run_grouped()
  local groups, order = {}, {}
  for _, command in ipairs(queued) do
    local name = command[1]
    if name == 'ZADD' or name == 'HSET' then
      local group_key = name .. '\n' .. command[2]
      local group = groups[group_key]
      if not group then
        group = {name, command[2]}
        groups[group_key] = group
        order[#order + 1] = group
      end
      for i = 3, #command do group[#group + 1] = command[i] end
    else
      order[#order + 1] = command
    end
  end
  for _, command in ipairs(order) do
    if #command <= SLICE + 2 then
      redis.call(unpack(command))
    else
      local step = (command[1] == 'ZADD' or command[1] == 'HSET') and 2 or 1
      for first = 3, #command, SLICE do
        local last = math.min(first + SLICE - 1, #command)
        last = last - (last - first + 1) % step
        redis.call(command[1], command[2], unpack(command, first, last))
      end
    end
  end
end

if creates_only and #queued > 1 then
  run_grouped()
else
  for _, command in ipairs(queued) do redis.call(unpack(command)) end
end
-- a model left without records has no index to speak of: its marker goes with the last record
for _, model in ipairs(models) do
  if model.removed and redis.call('EXISTS', model.ids) == 0 then redis.call('DEL', model.base .. ':ix') end
end
return results
