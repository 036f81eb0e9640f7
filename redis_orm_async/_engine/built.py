"""Which of a model's indexes every record has entries in: the ``{prefix}:ix`` marker.

An index declared on a model that already has records holds only the records written since: the
older ones have no entries until ``reindex`` (or ``repair``) writes them. The marker names the
indexes and unique constraints that are complete (``i:<field>`` equality, ``z:<field>`` range,
``l:<field>`` lex, ``u:<constraint>`` unique), so the ORM can refuse a query that would need an
incomplete one instead of answering it short. ``reindex`` also keeps its resume point there.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._backends.protocol import Backend
from .._model.schema import ModelMeta

RESUME_FIELD = "~reindex"
"""The marker field holding an interrupted reindex's resume point (no index name starts with ~)."""


def index_names(meta: ModelMeta) -> tuple[str, ...]:
    """Every index and unique constraint of the model, by its marker name."""
    names: list[str] = []
    for name, field in meta.fields.items():
        if field.index == "equality":
            names.append(f"i:{name}")
        elif field.index == "range":
            names.append(f"z:{name}")
        if field.lex:
            names.append(f"l:{name}")
    names.extend(f"u:{constraint.name}" for constraint in meta.uniques)
    return tuple(names)


def describe(name: str) -> str:
    """A marker name as a person reads it: ``unique email``, ``range index on age``."""
    kind, _, target = name.partition(":")
    what = {"i": "equality index on", "z": "range index on", "l": "lex index on", "u": "unique"}
    return f"{what.get(kind, kind)} {target}"


async def read_marker(backend: Backend, meta: ModelMeta) -> dict[str, str]:
    """The marker as stored: built index names, and the resume point of a reindex under way."""
    stored = await backend.execute(("HGETALL", meta.keys.built()))
    return dict(stored or {})


async def mark_built(backend: Backend, meta: ModelMeta, names: Iterable[str]) -> None:
    """Record that every record has entries in these indexes (each name maps to the time, in ms,
    it was marked)."""
    wanted = list(names)
    if not wanted:
        return
    seconds, micros = await backend.execute(("TIME",))
    stamp = str(int(seconds) * 1000 + int(micros) // 1000)
    await backend.execute(("HSET", meta.keys.built(), *[part for name in wanted for part in (name, stamp)]))
