"""Expiry with clean indexes.

Redis drops an expired record's HASH and its unique claims by itself: both carry the same
``PXAT``, so a token value is free again the moment its record expires, and a claim that still
points at a vanished record is treated as stale and taken over. What Redis cannot drop are the
record's entries in the shared index keys. Every expiring record therefore has an entry in the
model's expiry ZSET (scored by its expiry time in ms) and a "ghost" (the index keys that hold it).
A sweep drains the expiry ZSET up to the server's clock and removes each dead record's entries,
in one Lua script per batch so that it is atomic against concurrent writers on every backend.
Reads that meet an id whose record is gone call the same cleanup for those ids (lazy cleanup),
and ``count`` subtracts expired-but-unswept ids, so results are exact before any sweep runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._backends.protocol import Backend
from .._model.schema import ModelMeta
from .._model.state import LEX_SEPARATOR, IndexEntries

GHOST_SET = "S"
GHOST_LEX = "L"


def ghost_payload(meta: ModelMeta, record_key: str, entries: IndexEntries) -> str:
    """Newline-separated lines: ``R<record key>``, ``S<set key>``, ``L<lex key>\\0<escaped text>``.

    No key or escaped text can hold a newline or a NUL (the key layout escapes them), so the
    format needs no quoting and the Lua sweep can parse it without a JSON library.
    """
    lex_keys = {meta.keys.lex(f.name) for f in meta.fields.values() if f.lex}
    equality_head = meta.keys.base + ":i:"
    lines = ["R" + record_key]
    lines.extend(GHOST_SET + key for key in sorted(entries.zsets) if key.startswith(equality_head))
    for key, (member, _score) in sorted(entries.zsets.items()):
        if key in lex_keys:
            lines.append(GHOST_LEX + key + LEX_SEPARATOR + member.split(LEX_SEPARATOR, 1)[0])
    return "\n".join(lines)


CLEAN_SCRIPT = """
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
    record_key = string.match(ghost, '^R([^\\n]*)')
  end
  local alive = record_key and redis.call('EXISTS', record_key) == 1
  if score and tonumber(score) < now_ms and not alive then
    if ghost then
      for line in string.gmatch(ghost, '[^\\n]+') do
        local kind, rest = string.sub(line, 1, 1), string.sub(line, 2)
        if kind == 'S' then
          redis.call('ZREM', rest, id)
        elseif kind == 'L' then
          local key, text = string.match(rest, '^([^%z]*)%z(.*)$')
          redis.call('ZREM', key, text .. '\\0' .. id)
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
"""
"""Remove the index entries of records that are due (``due``, limit) or of the given ids.

A record that is still alive is left alone (its expiry entry is repaired if it drifted); a
record that is gone has its equality, lex, range and id entries removed."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    swept: int
    examined: int


def _script_keys(meta: ModelMeta) -> list[str]:
    keys = meta.keys
    ranges = [keys.range(f.name) for f in meta.fields.values() if f.index == "range"]
    return [keys.expiry(), keys.ghosts(), keys.ids(), *ranges]


async def sweep_due(backend: Backend, meta: ModelMeta, limit: int) -> SweepResult:
    swept, examined = await backend.eval(CLEAN_SCRIPT, _script_keys(meta), ["due", limit])
    return SweepResult(int(swept), int(examined))


async def clean_ids(backend: Backend, meta: ModelMeta, ids: Sequence[str]) -> SweepResult:
    """Lazy cleanup: drop the entries of these ids if their records have expired."""
    if not ids:
        return SweepResult(0, 0)
    swept, examined = await backend.eval(CLEAN_SCRIPT, _script_keys(meta), ["ids", *ids])
    return SweepResult(int(swept), int(examined))

