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
-- Answer: {'ok', result...} ({'ok'} alone for a bulk create) or {'err', op, code, detail...}.
--
-- Before Redis 7 the whole script runs on every call: every function it defines is built again
-- each time, each local a function captures is one more object, looked up through the list of
-- those already captured, and a table grown field by field is rehashed as it grows. Hence its
-- shape: the functions are built in one constructor, as the fields of ``write`` (nearly all that
-- each captures), and the ops few batches hold (maintenance, repair, the bulk create) only when
-- one arrives.

-- The call's state, shared by the functions below.
local position = 0  -- the ARGV words read so far
local clock, clock_text = nil, nil  -- the server's time in ms, read once, and as text
local queued = {}  -- the commands pass two runs
local holders = {}  -- claim key -> the id it holds as the batch leaves it (false: none)
-- the overlay: one table per record touched, loaded once and changed as operations apply
local records = {}
local failure = nil  -- the first op that fails: {'err', op, code, detail...}

local write
write = {
  arg = function()
    position = position + 1
    return ARGV[position]
  end,

  -- the next ``count`` words at once (one call, not one per word)
  args = function(count)
    local first = position + 1
    position = position + count
    return unpack(ARGV, first, position)
  end,

  -- the server's time in ms, and the same as text: written out from TIME's own digits (seconds,
  -- then the microseconds' first three of six), as turning a number into text is dear here
  now_ms = function()
    if not clock then
      local time = redis.call('TIME')
      local micros = time[2]
      clock_text = time[1] .. string.sub(string.rep('0', 6 - #micros) .. micros, 1, 3)
      clock = tonumber(clock_text)
    end
    return clock, clock_text
  end,

  queue = function(...) queued[#queued + 1] = {...} end,

  holder_of = function(claim)
    local holder = holders[claim]
    if holder == nil then
      holder = redis.call('GET', claim)
      holders[claim] = holder
    end
    return holder
  end,

  -- whether any record of the model may expire: only then is its expiry ZSET read
  expiring = function(model)
    if model.expiring == nil then model.expiring = redis.call('EXISTS', model.exp) == 1 end
    return model.expiring
  end,

  -- read a record's hash, which also tells whether the record exists; HGETALL's own list is kept
  -- as the answer for as long as the record's hash is the one it lists (see flat_hash)
  read_hash = function(rec)
    local flat = redis.call('HGETALL', rec.key)
    local hash = {}
    for i = 1, #flat, 2 do hash[flat[i]] = flat[i + 1] end
    rec.hash, rec.exists, rec.listing, rec.listing_of = hash, #flat > 0, flat, hash
  end,

  -- a record's overlay table, loaded once (``with_hash``: read the whole hash now, which also
  -- tells whether the record exists)
  record = function(model, id, with_hash)
    local cache_key = model.base .. '\n' .. id
    local found = records[cache_key]
    if found then
      if with_hash and found.hash == nil then write.read_hash(found) end
      return found
    end
    local line = redis.call('HGET', model.st, id)
    local expiry = false
    if write.expiring(model) then expiry = redis.call('ZSCORE', model.exp, id) end
    -- every field the overlay may get is named here, so that the table is built at its full size
    found = {
      model = model, id = id, key = model.base .. ':r:' .. escape(id),
      facts = parse_facts(line), line = line or '', exp = expiry and tonumber(expiry) or nil,
      exists = nil, hash = nil, listing = nil, listing_of = nil,  -- set below, or by read_hash
      listed = nil,  -- whether the id ZSET lists it: nil until read
    }
    if with_hash then
      write.read_hash(found)
    else
      found.exists = redis.call('EXISTS', found.key) == 1
    end
    records[cache_key] = found
    return found
  end,

  hash_of = function(rec)
    if rec.hash == nil then
      if rec.exists then write.read_hash(rec) else rec.hash = {} end
    end
    return rec.hash
  end,

  flat_hash = function(rec)
    local hash = write.hash_of(rec)
    if rec.listing_of == hash then return rec.listing end
    local flat = {}
    for name, text in pairs(hash) do
      flat[#flat + 1] = name
      flat[#flat + 1] = text
    end
    return flat
  end,

  -- a record with nothing but leftovers: its hash is gone (expired, evicted, deleted by hand)
  leftovers = function(rec)
    if rec.exists then return false end
    if rec.listed == nil then rec.listed = redis.call('ZSCORE', rec.model.ids, rec.id) ~= false end
    return rec.line ~= '' or rec.exp ~= nil or rec.listed
  end,

  fail = function(index, code, ...)
    if not failure then failure = {'err', index, code, ...} end
    return false
  end,

  claims_of = function(rec)
    if not rec.exists then return {} end
    return claim_keys(rec.model, rec.id, rec.facts)
  end,

  -- Queue the index moves from a record's old entries to its new ones: remove what the new ones
  -- drop, add what they add (all of them when ``add_all``: a rebuild cannot trust the old ones),
  -- and release the old claims the record still holds.
  move_entries = function(id, old_zsets, old_claims, new_zsets, new_claims, add_all)
    local queue = write.queue
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
      if not new_claims[claim] and write.holder_of(claim) == id then
        queue('DEL', claim)
        holders[claim] = false
      end
    end
  end,

  -- Move a record from its current state to a new one: nil facts removes it. Checks the unique
  -- claims it wants (a claim held by another live record that still holds the value is a
  -- violation; any other holder is stale and taken over), then queues every change.
  -- ``only``: the fields whose facts may change (an update's), so that the entries of the others are
  -- neither derived nor compared; nil for a create, a removal or a rebuild.
  transition = function(index, rec, new_facts, new_exp, hash_writes, hash_deletes, fresh, new_line, only)
    local queue = write.queue
    local model, id = rec.model, rec.id
    local old_zsets, old_claims = EMPTY, EMPTY
    if rec.exists or write.leftovers(rec) then old_zsets, old_claims = entries(model, id, rec.facts, only) end
    local new_zsets, new_claims = EMPTY, EMPTY
    if new_facts then new_zsets, new_claims = entries(model, id, new_facts, only) end

    for claim, constraint in pairs(new_claims) do
      if rec.exists and old_claims[claim] then
        holders[claim] = id  -- a live record holds the claims its state lists
      else
        local holder = write.holder_of(claim)
        if holder and holder ~= id then
          local other = write.record(model, holder)
          if other.exists and write.claims_of(other)[claim] then
            return write.fail(index, 'unique', model.base, constraint)
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

    write.move_entries(id, old_zsets, old_claims, new_zsets, new_claims, false)
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
      for claim in pairs(claim_keys(model, id, new_facts)) do
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
      rec.line, rec.exp, rec.listed, rec.exists, rec.facts, rec.hash = '', nil, false, false, EMPTY, {}
      model.removed = true
    end
    return true
  end,

  clean = function(index, rec)
    if write.leftovers(rec) then return write.transition(index, rec, nil, nil, {}, {}, false) end
    return true
  end,

  -- the hash a caller read, as '-' or #fields and (name, text) pairs: nil or the hash, and #fields
  read_expect = function()
    local count = write.arg()
    if count == '-' then return nil, 0 end
    count = tonumber(count)
    local expected = {}
    for _ = 1, count do
      local name = write.arg()
      expected[name] = write.arg()
    end
    return expected, count
  end,

  same_hash = function(actual, expected, count)
    local seen = 0
    for name, text in pairs(actual) do
      if expected[name] ~= text then return false end
      seen = seen + 1
    end
    return seen == count
  end,

  expiry_of = function(rec, ttl)
    if ttl == 'k' then return rec.exp end
    local expiry = nil
    if ttl ~= 'p' then expiry = write.now_ms() + tonumber(ttl) end
    return capped(rec.model, rec.id, expiry)
  end,

  -- the record a locator names, or nil; a claim must point at a live record that still holds it
  locate = function(model, kind, value)
    if kind == 'i' then return write.record(model, value, true) end
    local holder = write.holder_of(value)
    if not holder then return nil end
    local rec = write.record(model, holder, true)
    if rec.exists and not write.claims_of(rec)[value] then return nil end
    return rec
  end,

  read_create = function(model)
    local args = write.args
    local id, ttl, fresh, count = args(4)
    local writes = {args(2 * tonumber(count))}
    local line = write.arg()
    local facts, names = {}, model.facts
    for i = 1, #names do
      local token, score, lex = args(3)
      facts[names[i]] = {t = token, s = score, x = lex}
    end
    return {id = id, ttl = ttl, fresh = fresh == 'n', writes = writes, line = line, facts = facts}
  end,

  -- The first record of an empty model: every index the model has is complete, so its marker
  -- ('<base>:ix', see _engine/built.py) names them all (and '~since', so that a model with no index
  -- has a marker too); reindex and repair name those added later.
  mark_empty_model = function(model)
    if model.checked_empty then return end
    model.checked_empty = true
    if redis.call('EXISTS', model.ids) == 1 then return end
    local names = {'~since'}
    for _, name in ipairs(model.equality) do names[#names + 1] = 'i:' .. name end
    for _, name in ipairs(model.range) do names[#names + 1] = 'z:' .. name end
    for _, name in ipairs(model.lex) do names[#names + 1] = 'l:' .. name end
    for _, unique in ipairs(model.uniques) do names[#names + 1] = 'u:' .. unique.name end
    local command = {'HSET', model.base .. ':ix'}
    local _, now = write.now_ms()
    for _, name in ipairs(names) do
      command[#command + 1] = name
      command[#command + 1] = now
    end
    write.queue(unpack(command))
  end,

  create = function(index, model, spec)
    write.mark_empty_model(model)
    local cache_key = model.base .. '\n' .. spec.id
    if spec.fresh and not records[cache_key] then
      -- an id the client just generated: no record, and nothing left of one, can have it
      records[cache_key] = {
        model = model, id = spec.id, key = model.base .. ':r:' .. escape(spec.id),
        exists = false, facts = EMPTY, line = '', listed = false,
      }
    end
    local rec = write.record(model, spec.id)
    if rec.exists then return write.fail(index, 'exists', model.base, spec.id) end
    local exp = nil
    if spec.ttl ~= '' then exp = write.now_ms() + tonumber(spec.ttl) end
    exp = capped(model, spec.id, exp)
    if not write.transition(index, rec, spec.facts, exp, spec.writes, {}, true, spec.line) then return false end
    local hash = {id = spec.id}
    for i = 1, #spec.writes, 2 do hash[spec.writes[i]] = spec.writes[i + 1] end
    rec.hash = hash
    return rec
  end,

  update = function(index, model)
    local args = write.args
    local kind, value = args(2)
    local expected, expected_count = write.read_expect()
    local ttl, count = args(2)
    local changes, only = {}, {}  -- ``only``: the fields whose entries the changes may move
    for k = 1, tonumber(count) do
      local name, op, text, token, score, lex = args(6)
      changes[k] = {name = name, op = op, value = text, t = token, s = score, x = lex}
      only[name] = true
    end
    local spec = nil
    if write.arg() == 'C' then spec = write.read_create(model) end
    local rec = write.locate(model, kind, value)
    if not rec or not rec.exists then
      if rec and not write.clean(index, rec) then return false end
      if not spec then return false end
      local created = write.create(index, model, spec)
      if not created then return false end
      return write.flat_hash(created)
    end
    local hash = write.hash_of(rec)
    if expected and not write.same_hash(hash, expected, expected_count) then
      return write.fail(index, 'conflict', model.base, rec.id)
    end
    local facts = {}
    for name, fact in pairs(rec.facts) do facts[name] = fact end
    local new_hash = {}
    for name, text in pairs(hash) do new_hash[name] = text end
    for k = 1, #changes do
      local change = changes[k]
      local name = change.name
      if change.op == 'i' then
        local current = new_hash[name]
        if current == nil then return write.fail(index, 'null', model.base, name) end
        if not is_int_text(current) then return write.fail(index, 'not_int', model.base, name) end
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
    if not write.transition(index, rec, facts, write.expiry_of(rec, ttl), writes, deletes, false, nil, only) then
      return false
    end
    rec.hash = new_hash
    return write.flat_hash(rec)
  end,

  -- the live record a locator names, or nil; what is left of a gone one is cleaned on the way
  live = function(index, model, kind, value)
    local rec = write.locate(model, kind, value)
    if rec and not rec.exists then
      write.clean(index, rec)
      return nil
    end
    return rec
  end,

  delete = function(index, model)
    local kind, value = write.args(2)
    local expected, expected_count = write.read_expect()
    local rec = write.live(index, model, kind, value)
    if not rec then return false end
    local old = write.flat_hash(rec)
    if expected and not write.same_hash(write.hash_of(rec), expected, expected_count) then
      return write.fail(index, 'conflict', model.base, rec.id)
    end
    if not write.transition(index, rec, nil, nil, {}, {}, false) then return false end
    return old
  end,

  touch = function(index, model)
    local kind, value, ttl = write.args(3)
    local rec = write.live(index, model, kind, value)
    if not rec then return false end
    if not write.transition(index, rec, rec.facts, write.expiry_of(rec, ttl), {}, {}, false, rec.line, {}) then
      return false
    end
    return write.flat_hash(rec)
  end,

  -- Remove the leftovers of due records; a live one keeps its entries, its expiry entry mended.
  sweep = function(index, model, limit)
    if not write.expiring(model) then return {0, 0} end
    local now, now_text = write.now_ms()
    local due = redis.call('ZRANGEBYSCORE', model.exp, '-inf', '(' .. now_text, 'LIMIT', 0, limit)
    local swept = 0
    for i = 1, #due do
      local id = due[i]
      local rec = write.record(model, id)
      if rec.exists then
        local left = redis.call('PTTL', rec.key)
        if left == -1 then
          write.queue('ZREM', model.exp, id)
          rec.exp = nil
        elseif left > 0 then
          rec.exp = now + left
          write.queue('ZADD', model.exp, rec.exp, id)
        end
      elseif write.leftovers(rec) then
        write.clean(index, rec)
        swept = swept + 1
      end
    end
    return {swept, #due}
  end,

  -- Maintenance and repair (ops X, Y, R, P), built into ``write`` on first use.
  load_maintenance = function()
    if write.clean_ids then return end

    function write.clean_ids(index, model)
      local cleaned = 0
      for _ = 1, tonumber(write.arg()) do
        local rec = write.record(model, write.arg())
        if write.leftovers(rec) then
          write.clean(index, rec)
          cleaned = cleaned + 1
        end
      end
      return cleaned
    end

    -- Delete the first ``limit`` records an equality index key holds, each only if its state still
    -- puts it there (an entry left behind by drift is removed instead): a delete_many of an exact
    -- equality, one round trip per batch. Answers {deleted, examined}.
    function write.delete_indexed(index, model, key, limit)
      local ids = redis.call('ZRANGE', key, 0, limit - 1)
      local deleted = 0
      for _, id in ipairs(ids) do
        local rec = write.record(model, id, true)
        local held = index_entries(model, id, rec.facts)[key] ~= nil
        if rec.exists and held then
          if not write.transition(index, rec, nil, nil, {}, {}, false) then return false end
          deleted = deleted + 1
        elseif rec.exists then
          write.queue('ZREM', key, id)  -- the record no longer has this value: a stale entry
        else
          write.clean(index, rec)
          if not held then write.queue('ZREM', key, id) end  -- gone, and its state never listed it here
        end
      end
      return {deleted, #ids}
    end

    -- Rebuild a live record's entries, claims and state line from its hash (``line``: the facts
    -- the caller computed from the hash it read). Answers 'gone', 'changed' (read it again), or
    -- 'ok' and the constraints whose value another live record holds (duplicates only a person can
    -- settle).
    function write.rebuild(index, model)
      local queue = write.queue
      local id = write.arg()
      local expected, expected_count = write.read_expect()
      local facts = parse_facts(write.arg())
      local rec = write.record(model, id, true)
      if not rec.exists then
        write.clean(index, rec)
        return {'gone'}
      end
      if not write.same_hash(write.hash_of(rec), expected, expected_count) then return {'changed'} end
      local old_zsets, old_claims = entries(model, id, rec.facts)
      local new_zsets, new_claims = entries(model, id, facts)
      write.move_entries(id, old_zsets, old_claims, new_zsets, new_claims, true)
      local left = redis.call('PTTL', rec.key)
      local exp = nil
      if left > 0 then
        exp = write.now_ms() + left
        queue('ZADD', model.exp, exp, id)
      elseif rec.exp then
        queue('ZREM', model.exp, id)
      end
      local answer = {'ok'}
      for claim, constraint in pairs(new_claims) do
        local holder = write.holder_of(claim)
        local other = nil
        if holder and holder ~= id then other = write.record(model, holder) end
        if other and other.exists and write.claims_of(other)[claim] then
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
    function write.prune(index, model)
      local queue = write.queue
      local key, kind = write.arg(), write.arg()
      local removed = 0
      for _ = 1, tonumber(write.arg()) do
        local member = write.arg()
        local owner = member
        if kind == 'l' then owner = string.sub(member, (string.find(member, '\0', 1, true) or 0) + 1) end
        if kind == 'c' then
          local holder = write.holder_of(member)
          if holder then
            local rec = write.record(model, holder)
            if not rec.exists or not write.claims_of(rec)[member] then
              if not rec.exists then write.clean(index, rec) end
              if write.holder_of(member) then
                queue('DEL', member)
                holders[member] = false
                removed = removed + 1
              end
            end
          end
        else
          local rec = write.record(model, owner)
          if not rec.exists then
            if write.leftovers(rec) then write.clean(index, rec) end
            if kind == 'z' or kind == 'l' then queue('ZREM', key, member) end
            removed = removed + 1
          elseif kind == 'z' or kind == 'l' then
            local entry = index_entries(model, owner, rec.facts)[key]
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
  end,
}

local models = {}
for i = 1, tonumber(write.arg()) do
  local model, after = read_model(position + 1)
  models[i] = model
  position = after - 1
end
local sweep_limit = tonumber(write.arg())
local bulk = write.arg() == 'B'

-- no command unpacks more than SLICE words at once (Lua's unpack has a limit)
local SLICE = 3000

if bulk then
  -- Creates of ids the client generated, of one model: nothing to read but the claims they take
  -- (one MGET), and one command per index key, not one per record. The same entries, claims and
  -- state lines as ``create``, by the same derivation.
  local function call_sliced(name, key, args, step)
    for first = 1, #args, SLICE do
      local last = math.min(first + SLICE - 1, #args)
      last = last - (last - first + 1) % step
      if key then redis.call(name, key, unpack(args, first, last))
      else redis.call(name, unpack(args, first, last)) end
    end
  end

  -- The bulk create ('B'): records of one model whose ids the client generated, so no record,
  -- and nothing left of one, can have them. The client sends each record's texts, state line,
  -- claims and range scores, and its equality and lex entries grouped by key; the script reads
  -- nothing but the claims, and what repeats the id (the record key, the id ZSET, a state line's
  -- field, an equality entry's score, a range entry's member) it adds itself, as every word sent
  -- costs the client and the server more than building it here does:
  --   ttl ('' or ms, for every record); keys ('=' when every id is its own key text, 'e' when
  --   some id needs escaping); #names name... (the hash fields a record may have);
  --   #partial, then (position mask)... for each record without every name (a '1' or a '0' per
  --   name; positions count from 1);
  --   #records, then per record: id text... line claim... score...
  --     claim: one per unique of the model, its claim key, or '' when the record claims nothing;
  --     score: one per range index of the model, the record's score, or '' when it has none;
  --   #groups, then per group: key kind #words member..., kind 'm' (at the id's score: an
  --     equality index) or '0' (at score 0: a lex index).
  -- (Lengths are counted rather than taken with '#', a search each time on a growing table.)
  local function bulk_create(model)
    local argv, call = ARGV, redis.call
    local ttl, key_kind = write.args(2)
    local names = {write.args(tonumber(write.arg()))}
    local masks = {}
    for _ = 1, tonumber(write.arg()) do
      local index, mask = write.args(2)
      masks[tonumber(index)] = mask
    end
    local name_count, uniques, ranges = #names, model.uniques, model.range
    local unique_count, range_count = #uniques, #ranges
    local count = tonumber(write.arg())
    local starts, keys, owners, constraints, seen, claims = {}, {}, {}, {}, {}, 0
    local at = position + 1
    for index = 1, count do
      starts[index] = at
      local texts, mask = name_count, masks[index]
      if mask then
        local _, ones = string.gsub(mask, '1', '')
        texts = ones
      end
      local claim_at = at + 2 + texts
      for u = 1, unique_count do
        local key = argv[claim_at + u - 1]
        if key ~= '' then
          if seen[key] then return {'err', index, 'unique', model.base, uniques[u].name} end
          seen[key] = true
          claims = claims + 1
          keys[claims], owners[claims], constraints[claims] = key, index, u
        end
      end
      at = claim_at + unique_count + range_count
    end
    local group_starts = {}
    for index = 1, tonumber(argv[at]) do
      at = at + 1
      group_starts[index] = at
      at = at + 2 + tonumber(argv[at + 2])
    end
    position = at

    for first = 1, claims, SLICE do
      local last = math.min(first + SLICE - 1, claims)
      local found = call('MGET', unpack(keys, first, last))
      for i = first, last do
        local holder = found[i - first + 1]
        if holder then
          local other = write.record(model, holder)
          if other.exists and write.claims_of(other)[keys[i]] then
            return {'err', owners[i], 'unique', model.base, uniques[constraints[i]].name}
          end
        end
      end
    end

    write.mark_empty_model(model)
    local exp = nil
    if ttl ~= '' then exp = write.now_ms() + tonumber(ttl) end
    local may_expire = exp or model.max_life
    local head, int_ids, escaped = model.base .. ':r:', model.int_ids, key_kind ~= '='
    local ids, states, claimed, claim_exps, expiries = {}, {}, {}, {}, {}
    local n_ids, n_states, n_claimed, n_expiries = 0, 0, 0, 0
    local scored, n_scored = {}, {}
    for r = 1, range_count do scored[r], n_scored[r] = {}, 0 end
    local full = {'id', ''}  -- the hash of a record with every name, refilled for each such record
    for k = 1, name_count do full[2 * k + 1] = names[k] end
    for index = 1, count do
      local first = starts[index]
      local id, mask = argv[first], masks[index]
      local key = head .. (escaped and escape(id) or id)
      local t = first + 1
      if not mask then
        full[2] = id
        for k = 1, name_count do full[2 * k + 2] = argv[t + k - 1] end
        t = t + name_count
        if name_count < SLICE / 2 then call('HSET', key, unpack(full)) else call_sliced('HSET', key, full, 2) end
      else
        local hash, size = {'id', id}, 2
        for k = 1, name_count do
          if string.byte(mask, k) == 49 then
            hash[size + 1], hash[size + 2] = names[k], argv[t]
            size, t = size + 2, t + 1
          end
        end
        call_sliced('HSET', key, hash, 2)
      end
      local line = argv[t]
      if line ~= '' then
        states[n_states + 1], states[n_states + 2] = id, line
        n_states = n_states + 2
      end
      ids[n_ids + 1], ids[n_ids + 2] = int_ids and id or '0', id
      n_ids = n_ids + 2
      local record_exp = may_expire and capped(model, id, exp)
      if record_exp then
        call('PEXPIREAT', key, record_exp)
        expiries[n_expiries + 1], expiries[n_expiries + 2] = record_exp, id
        n_expiries = n_expiries + 2
      end
      for u = 1, unique_count do
        local claim = argv[t + u]
        if claim ~= '' then
          claimed[n_claimed + 1], claimed[n_claimed + 2] = claim, id
          n_claimed = n_claimed + 2
          claim_exps[n_claimed / 2] = record_exp or false
        end
      end
      t = t + unique_count
      for r = 1, range_count do
        local score = argv[t + r]
        if score ~= '' then
          local size = n_scored[r]
          scored[r][size + 1], scored[r][size + 2] = score, id
          n_scored[r] = size + 2
        end
      end
    end
    if n_expiries == 0 then
      call_sliced('MSET', false, claimed, 2)
    else
      for i = 1, n_claimed / 2 do
        local exp_at = claim_exps[i]
        if exp_at then call('SET', claimed[2 * i - 1], claimed[2 * i], 'PXAT', exp_at)
        else call('SET', claimed[2 * i - 1], claimed[2 * i]) end
      end
      call_sliced('ZADD', model.exp, expiries, 2)
    end
    call_sliced('ZADD', model.ids, ids, 2)
    for r = 1, range_count do call_sliced('ZADD', model.base .. ':z:' .. ranges[r], scored[r], 2) end
    for _, first in ipairs(group_starts) do
      local key, kind, last = argv[first], argv[first + 1], first + 2 + tonumber(argv[first + 2])
      local entries, size, id_scored = {}, 0, kind == 'm' and int_ids
      for w = first + 3, last do
        local member = argv[w]
        entries[size + 1], entries[size + 2] = id_scored and member or '0', member
        size = size + 2
      end
      call_sliced('ZADD', key, entries, 2)
    end
    call_sliced('HSET', model.st, states, 2)
    return {'ok'}  -- one word for the whole chunk: a fresh create answers nothing of its own
  end

  local reply = bulk_create(models[1])
  if reply[1] == 'err' then return reply end
  if sweep_limit > 0 then
    for _, model in ipairs(models) do write.sweep(0, model, sweep_limit) end
  end
  for _, command in ipairs(queued) do redis.call(unpack(command)) end
  return reply
end

local results = {'ok'}
local creates_only = true
for index = 1, tonumber(write.arg()) do
  local kind, model_index = write.args(2)
  if kind ~= 'C' then creates_only = false end
  local model = models[tonumber(model_index)]
  local result
  if kind == 'C' then
    result = write.create(index, model, write.read_create(model)) and true
  elseif kind == 'U' then
    result = write.update(index, model)
  elseif kind == 'D' then
    result = write.delete(index, model)
  elseif kind == 'T' then
    result = write.touch(index, model)
  elseif kind == 'S' then
    result = write.sweep(index, model, tonumber(write.arg()))
  elseif kind == 'X' then
    write.load_maintenance()
    result = write.clean_ids(index, model)
  elseif kind == 'Y' then
    write.load_maintenance()
    result = write.delete_indexed(index, model, write.arg(), tonumber(write.arg()))
  elseif kind == 'R' then
    write.load_maintenance()
    result = write.rebuild(index, model)
  elseif kind == 'P' then
    write.load_maintenance()
    result = write.prune(index, model)
  else
    return {'err', index, 'unknown_op', kind}
  end
  if failure then return failure end
  results[#results + 1] = result
end
if sweep_limit > 0 then
  for i = 1, #models do write.sweep(0, models[i], sweep_limit) end
end

if creates_only and #queued > 1 then
  -- Creates of distinct records touch distinct members, so their ZADD and HSET commands commute:
  -- a batch of creates sends one command per key (in slices Lua's unpack can take), not one per
  -- record; any other batch runs its commands in the order they were queued.
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
else
  for i = 1, #queued do redis.call(unpack(queued[i])) end
end
-- a model left without records has no index to speak of: its marker goes with the last record
for i = 1, #models do
  local model = models[i]
  if model.removed and redis.call('EXISTS', model.ids) == 0 then redis.call('DEL', model.base .. ':ix') end
end
return results
