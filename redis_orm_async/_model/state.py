"""Index entries as data: which SET, ZSET and claim entries one record state implies.

Writes diff the entries of the old and new state into commands; the audit compares them with what
Redis holds. Both derive entries through this one pure function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._backends.protocol import Command
from .keys import escape
from .schema import ModelMeta

LEX_SEPARATOR = "\x00"
"""Separates the escaped text from the id in a lex ZSET member; escaped text holds no NUL."""


@dataclass
class IndexEntries:
    """``sets``: SET keys holding the id; ``zsets``: ZSET key to (member, score); ``claims``."""

    sets: set[str] = field(default_factory=set)
    zsets: dict[str, tuple[str, float]] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)


_NO_ENTRIES = IndexEntries()
"""The entries of a record that does not exist; only ever read."""


def lex_member(text: str, id_text: str) -> str:
    return escape(text) + LEX_SEPARATOR + id_text


def index_entries(meta: ModelMeta, id_text: str, encoded: Mapping[str, str | None]) -> IndexEntries:
    """Every index entry that a record with these stored values must have."""
    entries = IndexEntries()
    keys = meta.keys
    id_score = meta.id_score(id_text)
    entries.zsets[keys.ids()] = (id_text, id_score)
    for name, field_meta in meta.fields.items():
        text = encoded.get(name)
        if field_meta.index == "equality":
            token = None if text is None else field_meta.codec.token(text)
            entries.zsets[keys.equality(name, token)] = (id_text, id_score)
        elif field_meta.index == "range" and text is not None and field_meta.codec.score:
            entries.zsets[keys.range(name)] = (id_text, field_meta.codec.score(text))
        if field_meta.lex and text is not None:
            entries.zsets[keys.lex(name)] = (lex_member(text, id_text), 0.0)
    for constraint in meta.uniques:
        claim = meta.claim_key(constraint, encoded, id_text)
        if claim is not None:
            entries.claims[claim] = constraint.name
    return entries


def index_diff(
    id_text: str, old: IndexEntries | None, new: IndexEntries | None
) -> tuple[list[Command], list[str], list[str]]:
    """Commands that move index entries from ``old`` to ``new`` (either may be absent).

    Returns the commands, the claim keys that are released and the claim keys that are taken;
    the caller decides how claims are written (plain SET, or SET with an expiry).
    """
    before = old or _NO_ENTRIES
    after = new or _NO_ENTRIES
    commands: list[Command] = []
    for key in before.sets - after.sets:
        commands.append(("SREM", key, id_text))
    for key in after.sets - before.sets:
        commands.append(("SADD", key, id_text))
    for key, (member, _score) in before.zsets.items():
        if after.zsets.get(key, (None,))[0] != member:
            commands.append(("ZREM", key, member))
    for key, (member, score) in after.zsets.items():
        if before.zsets.get(key) != (member, score):
            commands.append(("ZADD", key, score, member))
    released = [key for key in before.claims if key not in after.claims]
    taken = [key for key in after.claims if key not in before.claims]
    return commands, released, taken
