--! include keys.lua
-- The record-state model shared by every write script: key escaping, value tokens, exact integer
-- arithmetic, a model's descriptor, and the index entries a record's facts imply. Each function
-- mirrors one in redis_orm_async/_model/state.py or _model/keys.py, and tests run both on the
-- same inputs.

-- '-' for null, '=' and the escaped text, or '#' and a digest for text longer than 256 bytes
local function value_token(text)
  if text == nil then return '-' end
  if #text > 256 then return '#' .. redis.sha1hex(text) end
  return '=' .. escape(text)
end

local function score_text(number_text)
  local value = tonumber(number_text)
  if value == math.huge then return 'inf' end
  if value == -math.huge then return '-inf' end
  return string.format('%.17g', value)
end

local function is_int_text(text)
  return type(text) == 'string' and string.match(text, '^%-?%d+$') ~= nil
    and string.match(text, '^%-?0%d') == nil and text ~= '-0'
end

-- exact sum of two canonical integer texts, whatever their size
local function add_int(x, y)
  if #x < 16 and #y < 16 then
    local sum = tonumber(x) + tonumber(y)
    if sum == 0 then return '0' end
    return string.format('%.0f', sum)
  end
  -- Digit-string arithmetic, built here rather than beside add_int: few sums need it, and before
  -- Redis 7 every function a script defines at its top level is built again on every call.
  local function compare_digits(a, b)
    if #a ~= #b then return #a < #b and -1 or 1 end
    if a == b then return 0 end
    return a < b and -1 or 1
  end

  local function add_digits(a, b)
    local out, carry = {}, 0
    local i, j = #a, #b
    while i > 0 or j > 0 or carry > 0 do
      local sum = carry
      if i > 0 then sum = sum + string.byte(a, i) - 48; i = i - 1 end
      if j > 0 then sum = sum + string.byte(b, j) - 48; j = j - 1 end
      out[#out + 1] = string.char(48 + sum % 10)
      carry = math.floor(sum / 10)
    end
    return string.reverse(table.concat(out))
  end

  -- a - b for digit strings with a >= b
  local function subtract_digits(a, b)
    local out, borrow = {}, 0
    local j = #b
    for i = #a, 1, -1 do
      local digit = string.byte(a, i) - 48 - borrow
      if j > 0 then digit = digit - (string.byte(b, j) - 48); j = j - 1 end
      if digit < 0 then digit = digit + 10; borrow = 1 else borrow = 0 end
      out[#out + 1] = string.char(48 + digit)
    end
    local text = string.gsub(string.reverse(table.concat(out)), '^0+', '')
    if text == '' then return '0' end
    return text
  end

  local x_negative, y_negative = string.sub(x, 1, 1) == '-', string.sub(y, 1, 1) == '-'
  local a = x_negative and string.sub(x, 2) or x
  local b = y_negative and string.sub(y, 2) or y
  local digits, negative
  if x_negative == y_negative then
    digits, negative = add_digits(a, b), x_negative
  else
    local order = compare_digits(a, b)
    if order == 0 then return '0' end
    if order > 0 then digits, negative = subtract_digits(a, b), x_negative
    else digits, negative = subtract_digits(b, a), y_negative end
  end
  if negative then return '-' .. digits end
  return digits
end

-- The one empty table that answers "nothing" wherever the answer is only read (a model without
-- indexes, a record without facts): on the server every table costs time to build. Nothing may
-- write into it.
local EMPTY = {}

-- A model as the client describes it, read from ARGV starting at ``at`` (the words of
-- ``Layout.words`` in _model/state.py): base, flags ('i' for int ids), max_life in ms (or ''),
-- then counted lists of the
-- fields with facts (name, needs: t token, s score, x lex text), of the equality, range and lex
-- fields, and of the unique constraints (name, #fields, fields). Answers the model and the
-- position after it.
local function read_list(words, at)
  if words[at] == '0' then return EMPTY, at + 1 end
  local count = tonumber(words[at])
  return {unpack(words, at + 1, at + count)}, at + count + 1
end

local function read_model(at)
  local words = ARGV
  local base = words[at]
  local facts, needs, equality, range, lex, uniques = EMPTY, EMPTY, nil, nil, nil, EMPTY
  local count = tonumber(words[at + 3])
  local i = at + 4
  if count > 0 then facts, needs = {}, {} end
  for k = 1, count do
    local name = words[i]
    facts[k] = name
    needs[name] = words[i + 1]
    i = i + 2
  end
  equality, i = read_list(words, i)
  range, i = read_list(words, i)
  lex, i = read_list(words, i)
  count = tonumber(words[i])
  i = i + 1
  if count > 0 then uniques = {} end
  for k = 1, count do
    local name, fields = words[i], nil
    fields, i = read_list(words, i + 1)
    uniques[k] = {name = name, fields = fields}
  end
  return {
    base = base, ids = base .. ':ids', st = base .. ':st', exp = base .. ':exp',
    int_ids = words[at + 1] == 'i', max_life = tonumber(words[at + 2]),
    facts = facts, needs = needs, equality = equality, range = range, lex = lex, uniques = uniques,
  }, i
end

-- A state line: one row per field with facts, 'name\ttoken\tscore\tlex', rows joined by '\n'.
-- One pattern reads every row; its frontiers (%f) pin it to a row's start and end, so that a row
-- of any other shape is skipped, as Python skips it.
local FACT_ROW = '%f[^\n%z]([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)\t([^\t\n]*)%f[\n%z]'
local function parse_facts(line)
  if not line then return EMPTY end
  local facts = {}
  for name, token, score, lex in string.gmatch(line, FACT_ROW) do facts[name] = {t = token, s = score, x = lex} end
  return facts
end

local function format_facts(model, facts)
  local rows, names = {}, model.facts
  for i = 1, #names do
    local name = names[i]
    local fact = facts[name]
    if fact then rows[#rows + 1] = name .. '\t' .. fact.t .. '\t' .. fact.s .. '\t' .. fact.x end
  end
  return table.concat(rows, '\n')
end

-- The facts of an integer text computed here (a counter's new value): its token and score.
local function int_facts(model, name, text)
  local needs = model.needs[name] or ''
  local fact = {t = '', s = '', x = ''}
  if string.find(needs, 't', 1, true) then fact.t = value_token(text) end
  if string.find(needs, 's', 1, true) then fact.s = score_text(text) end
  return fact
end

-- Every ZSET entry the facts imply (ZSET key -> {member, score}), and every claim (claim key ->
-- constraint); with ``only`` (a set of field names), just the entries of those fields and the
-- claims of the constraints over them (an update derives what its changes touch, not the whole
-- record). The one derivation every write and every repair goes through. (Loops count rather
-- than call ipairs here and in write.lua's hot paths: each of its steps is a call.)
local function index_entries(model, id, facts, only)
  local zsets = {}
  local base = model.base
  local score = model.int_ids and id or '0'  -- int ids sort numerically, string ids by text
  if not only then zsets[model.ids] = {id, score} end
  local names = model.equality
  for i = 1, #names do
    local name = names[i]
    local fact = facts[name]
    if fact and fact.t ~= '' and (not only or only[name]) then
      zsets[base .. ':i:' .. name .. ':' .. fact.t] = {id, score}
    end
  end
  names = model.range
  for i = 1, #names do
    local name = names[i]
    local fact = facts[name]
    if fact and fact.s ~= '' and (not only or only[name]) then zsets[base .. ':z:' .. name] = {id, fact.s} end
  end
  names = model.lex
  for i = 1, #names do
    local name = names[i]
    local fact = facts[name]
    if fact and fact.x ~= '' and (not only or only[name]) then
      zsets[base .. ':l:' .. name] = {string.sub(fact.x, 2) .. '\0' .. id, '0'}
    end
  end
  return zsets
end

local function claim_keys(model, id, facts, only)
  local uniques = model.uniques
  if #uniques == 0 then return EMPTY end
  local claims = {}
  for u = 1, #uniques do
    local unique = uniques[u]
    local fields = unique.fields
    local wanted = true
    if only then
      wanted = false
      for f = 1, #fields do wanted = wanted or only[fields[f]] ~= nil end
    end
    if wanted then
      local parts = {}
      for f = 1, #fields do
        local name, token = fields[f], nil
        if name == 'id' then
          token = value_token(id)
        else
          local fact = facts[name]
          token = fact and fact.t or ''
        end
        if token == '' or token == '-' then parts = nil; break end
        parts[f] = token
      end
      if parts then claims[model.base .. ':u:' .. unique.name .. ':' .. table.concat(parts, ':')] = unique.name end
    end
  end
  return claims
end

local function entries(model, id, facts, only)
  return index_entries(model, id, facts, only), claim_keys(model, id, facts, only)
end

local CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'

-- an expiry no later than the record's max_life allows (the model's cap, counted from the
-- creation time its ULID carries; an id that is not a ULID has no cap)
local function capped(model, id, expiry)
  if not model.max_life or #id ~= 26 then return expiry end
  local born = 0
  for i = 1, 10 do
    local digit = string.find(CROCKFORD, string.sub(id, i, i), 1, true)
    if not digit then return expiry end
    born = born * 32 + digit - 1
  end
  local deadline = born + model.max_life
  if not expiry or expiry > deadline then return deadline end
  return expiry
end
