"""Which of a model's indexes every record has entries in: the ``{prefix}:ix`` marker.

An index declared on a model that already has records holds only the records written since: the
older ones have no entries until ``reindex`` (or ``repair``) writes them. The marker names the
indexes and unique constraints that are complete (``i:<field>`` equality, ``z:<field>`` range,
``l:<field>`` lex, ``u:<constraint>`` unique), so the ORM can refuse a query that would need an
incomplete one instead of answering it short. ``reindex`` also keeps its resume point there.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._backends.protocol import Backend, Command
from .._errors import IndexNotBuiltError
from .._model.schema import ModelMeta, Schema
from .._query.selection import Selection

RESUME_FIELD = "~reindex"
"""The marker field holding an interrupted reindex's resume point (no index name starts with ~)."""
SINCE_FIELD = "~since"
"""When the model's first record was created: every marker has it, so a model without any index
has a marker too (an absent marker means records older than markers, or none at all)."""


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
    """A marker name as a person reads it: ``unique email``, ``range index on age`` (``d:`` names
    a field whose default ``reindex`` has written into the records created before it existed)."""
    kind, _, target = name.partition(":")
    what = {
        "i": "equality index on",
        "z": "range index on",
        "l": "lex index on",
        "u": "unique",
        "d": "default of",
    }
    return f"{what.get(kind, kind)} {target}"


async def read_marker(backend: Backend, meta: ModelMeta) -> dict[str, str]:
    """The marker as stored: built index names, and the resume point of a reindex under way."""
    stored = await backend.execute(("HGETALL", meta.keys.built()))
    return dict(stored or {})


async def mark_built(backend: Backend, meta: ModelMeta, names: Iterable[str]) -> None:
    """Record that every record has entries in these indexes (each name maps to the time, in ms,
    it was marked)."""
    wanted = list(names)
    seconds, micros = await backend.execute(("TIME",))
    stamp = str(int(seconds) * 1000 + int(micros) // 1000)
    commands: list[Command] = [("HSETNX", meta.keys.built(), SINCE_FIELD, stamp)]
    if wanted:
        commands.append(("HSET", meta.keys.built(), *[part for name in wanted for part in (name, stamp)]))
    await backend.pipeline(commands)


def name_of_key(meta: ModelMeta, key: str) -> str | None:
    """The marker name of the index or claim that ``key`` belongs to (None for the id ZSET and
    other keys no marker covers)."""
    head = meta.keys.base + ":"
    if not key.startswith(head):
        return None
    kind, _, rest = key[len(head) :].partition(":")
    if kind not in ("i", "z", "l", "u") or not rest:
        return None
    return f"{kind}:{rest.split(':', 1)[0]}"


def names_of_keys(meta: ModelMeta, keys: Iterable[str]) -> set[str]:
    return {name for key in keys if (name := name_of_key(meta, key)) is not None}


class IndexCheck:
    """Refuses a read that needs an index older records have no entries in (per ORM, cached).

    One round trip per model, the first time a query of that model needs a secondary index or a
    unique claim (counted in ``stats.setup_round_trips``, not with the operations); a model found
    complete is not asked again. A model with no marker at all is
    trusted: it is empty (its first create writes the marker), or its records were written before
    markers existed (``reindex`` or ``repair`` writes one)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.complete: set[str] = set()

    def settled(self, meta: ModelMeta) -> bool:
        """True once the model was found complete: no query of it needs checking again."""
        return meta.keys.base in self.complete

    async def require(self, meta: ModelMeta, names: Iterable[str]) -> None:
        wanted = set(names)
        if not wanted or meta.keys.base in self.complete:
            return
        marker = set(await self.backend.execute(("HKEYS", meta.keys.built())) or ())
        self.backend.stats.as_setup(1)
        if not marker or set(index_names(meta)) <= marker:
            self.complete.add(meta.keys.base)
            return
        missing = sorted(wanted - marker)
        if missing:
            described = ", ".join(describe(name) for name in missing)
            raise IndexNotBuiltError(
                f"{meta.name}: not built yet: {described}; the records written before "
                f"{'it was' if len(missing) == 1 else 'they were'} declared have no entries, so "
                f"this query would leave them out; build {'it' if len(missing) == 1 else 'them'} with "
                f"`redis-orm-async reindex <app:schema> {meta.name}` or `await orm.reindex({meta.name})`",
                meta={"model": meta.name, "indexes": missing},
                backend_kind=self.backend.features.kind,
            )


def relation_indexes(
    schema: Schema, meta: ModelMeta, selection: Selection
) -> list[tuple[ModelMeta, set[str]]]:
    """The foreign-key indexes that loading a selection's relations reads (has-one, has-many and
    many-to-many look their children up by them), at every depth."""
    found: list[tuple[ModelMeta, set[str]]] = []
    for nested in selection.relations.values():
        relation = nested.relation
        target = schema.by_name(relation.target)
        if relation.kind in ("has_one", "has_many"):
            found.append((target, {_key_index(target, relation.foreign_key)}))
        elif relation.kind == "many_to_many" and relation.through is not None:
            through = schema.by_name(relation.through)
            keys = (relation.foreign_key, relation.target_key or "")
            found.append((through, {_key_index(through, key) for key in keys if key}))
        found.extend(relation_indexes(schema, target, nested.selection))
    return found


def _key_index(holder: ModelMeta, key_field: str) -> str:
    return f"{'z' if holder.fields[key_field].index == 'range' else 'i'}:{key_field}"
