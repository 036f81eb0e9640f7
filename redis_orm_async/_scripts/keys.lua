-- The key layout's escaping (redis_orm_async/_model/keys.py ``escape``), for scripts that turn an
-- id into its record key: each of % : { } * ? [ ] \ ~ = # - and the control characters becomes
-- %XX, so the record key of any id is one exact string.
local ESCAPED = '[%%:{}*?%[%]\\~=#%-%z\1-\31\127]'
local function escape(text)
  -- letters and digits only, the usual id: an anchored single-class match is far cheaper than
  -- scanning for the escaped set (%w is ASCII here: the server keeps the C character class)
  if string.find(text, '^%w*$') or not string.find(text, ESCAPED) then return text end
  -- the replacement is built here, not beside escape: every function a script defines at its
  -- top level is built again on every call before Redis 7, and few texts need escaping
  return (string.gsub(text, ESCAPED, function(c) return string.format('%%%02X', string.byte(c)) end))
end
