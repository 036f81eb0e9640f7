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
from .._scripts import load

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


CLEAN_SCRIPT = load("sweep")
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

