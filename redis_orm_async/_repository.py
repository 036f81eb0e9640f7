"""``Repository[M]``: the typed async API of one model over one backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from ._backends.protocol import Backend, pairs_to_dict
from ._engine.counters import apply_counters, counter_eligible
from ._engine.expiry import sweep_due
from ._engine.loading import find_selected, materialize
from ._engine.reads import count_rows, find_record, record_exists, record_ttl, select_ids
from ._engine.writes import (
    UNSET,
    CreateOp,
    DeleteOp,
    RecordTest,
    TtlArg,
    UpdateOp,
    WriteEngine,
    WriteOp,
    _Unset,
    validated,
)
from ._errors import NotFoundError, ValidationError, tag_backend_errors
from ._model.model import Model
from ._model.schema import Schema
from ._query.changes import parse_changes
from ._query.locate import Locator, unique_locator
from ._query.match import matcher
from ._query.parse import OrderBy, parse_query
from ._query.planner import Plan, build_plan
from ._query.selection import ALL, parse_selection, selection_fields

M = TypeVar("M", bound=Model)

CREATE_CHUNK = 500
"""Records per guarded MULTI/EXEC in ``create_many``: big enough to amortize, small enough to
keep a conflict cheap to retry."""



@tag_backend_errors
class Repository(Generic[M]):
    """Create, read, update and delete one model's records; every write is one MULTI/EXEC."""

    def __init__(self, schema: Schema, backend: Backend, engine: WriteEngine, model: type[M]) -> None:
        self._schema = schema
        self._backend = backend
        self._engine = engine
        self.model = model
        self.meta = schema.meta(model)

    async def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = UNSET) -> M:
        """Store a new record with its indexes and unique claims, or raise UniqueConstraintError."""
        op = CreateOp(self.meta, validated(self.meta, data), ttl)
        await self._engine.run([op])
        result: M = op.result
        return result

    async def create_many(
        self, data: Sequence[M | Mapping[str, Any]], *, ttl: TtlArg = UNSET
    ) -> list[M]:
        """Create many records; each chunk of 500 is all-or-nothing, and all are validated first."""
        ops = [CreateOp(self.meta, validated(self.meta, item), ttl) for item in data]
        seen: dict[str, int] = {}
        for position, op in enumerate(ops):
            for claim in [op.ref.key, *op.entries.claims]:
                if claim in seen:
                    raise ValidationError(
                        f"{self.meta.name}: items {seen[claim]} and {position} of create_many "
                        "share a unique value or id",
                        meta={"items": (seen[claim], position)},
                    )
                seen[claim] = position
        for start in range(0, len(ops), CREATE_CHUNK):
            await self._engine.run(ops[start : start + CREATE_CHUNK])
        return [op.result for op in ops]

    async def find_unique(
        self,
        where: Mapping[str, Any],
        *,
        select: Mapping[str, Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> M | None:
        """The record with this id or unique value, or None; ``select``/``include`` as find_many.

        One round trip (a unique value goes claim to record inside one read-only script), and a
        claim's record is returned only if it still holds the value."""
        locator = unique_locator(self.meta, where)
        selection = parse_selection(self._schema, self.meta, select, include)
        fields = None if selection is ALL else selection_fields(self.meta, selection)
        row = await find_record(self._backend, self.meta, locator, where, fields)
        if row is None:
            return None
        if selection is not ALL:
            found = await materialize(self._backend, self._schema, self.meta, [row], selection)
            selected: M = found[0]  # type: ignore[assignment]
            return selected
        record: M = self.meta.decode(row["id"], row)  # type: ignore[assignment]
        return record

    async def find_unique_or_raise(self, where: Mapping[str, Any]) -> M:
        record = await self.find_unique(where)
        if record is None:
            raise self._not_found(where)
        return record

    def _not_found(self, where: Mapping[str, Any]) -> NotFoundError:
        return NotFoundError(f"no {self.meta.name} matches {dict(where)!r}", meta={"model": self.meta.name})

    async def exists(self, where: Mapping[str, Any]) -> bool:
        """Whether a record has this id or unique value; one round trip."""
        return await record_exists(self._backend, self.meta, unique_locator(self.meta, where), where)

    async def update(
        self, where: Mapping[str, Any], data: Mapping[str, Any], *, ttl: TtlArg = UNSET
    ) -> M | None:
        """Change only the given fields and move their index entries; None if no record matches.

        The record keeps its expiry unless ``ttl`` is given (a timedelta resets it, None removes it).
        """
        locator = unique_locator(self.meta, where)
        changes = parse_changes(self.meta, data)
        if locator.id_text is not None and isinstance(ttl, _Unset) and counter_eligible(self.meta, changes):
            stored = await apply_counters(self._backend, self.meta, locator.id_text, changes)
            if stored is None:
                return None
            counted: M = self.meta.decode(locator.id_text, pairs_to_dict(stored))  # type: ignore[assignment]
            return counted
        op = UpdateOp(locator, changes, ttl)
        await self._engine.run([op])
        result: M | None = op.result
        return result

    async def update_many(
        self, where: Mapping[str, Any], data: Mapping[str, Any], *, ttl: TtlArg = UNSET
    ) -> int:
        """Update every record ``where`` selects; each chunk is one MULTI/EXEC. Returns the count."""
        changes = parse_changes(self.meta, data)
        return await self._write_selected(
            where, lambda locator, test: UpdateOp(locator, changes, ttl, still_matches=test)
        )

    async def upsert(
        self,
        where: Mapping[str, Any],
        create: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        ttl: TtlArg = UNSET,
    ) -> M:
        """Update the record ``where`` finds, or create it from ``where`` merged into ``create``.

        Fields named in ``where`` are the conflict target and cannot be changed by ``update``.
        """
        locator = unique_locator(self.meta, where)
        for name in where:
            if name in update and update[name] != where[name]:
                raise ValidationError(
                    f"{self.meta.name}.{name} is the upsert's conflict target and cannot change",
                    meta={"field": name},
                )
        instance = validated(self.meta, {**dict(create), **dict(where)})
        op = UpdateOp(
            locator, parse_changes(self.meta, update), ttl, create=instance, create_ttl=ttl
        )
        await self._engine.run([op])
        result: M = op.result
        return result

    async def delete(self, where: Mapping[str, Any]) -> M | None:
        """Delete one record with its index entries and claims; returns it, or None."""
        op = DeleteOp(unique_locator(self.meta, where))
        await self._engine.run([op])
        result: M | None = op.result
        return result

    async def delete_many(self, where: Mapping[str, Any]) -> int:
        """Delete every record ``where`` selects; each chunk is one MULTI/EXEC. Returns the count."""
        return await self._write_selected(where, lambda locator, test: DeleteOp(locator, still_matches=test))

    async def _write_selected(
        self, where: Mapping[str, Any], make_op: Callable[[Locator, RecordTest], WriteOp]
    ) -> int:
        """Select the ids, then write them in chunks; each write re-tests ``where`` on the record
        it read, so one that changed since the selection is skipped, not clobbered."""
        query = parse_query(self.meta, where)
        still_matches = matcher(self.meta, query.where)
        ids = await select_ids(self._backend, self.meta, query)
        written = 0
        for start in range(0, len(ids), CREATE_CHUNK):
            chunk = ids[start : start + CREATE_CHUNK]
            ops = [make_op(Locator(self.meta, id_text=id_text), still_matches) for id_text in chunk]
            await self._engine.run(ops)
            written += sum(op.result is not None for op in ops)
        return written

    async def count(self, where: Mapping[str, Any] | None = None) -> int:
        """Exact number of live records (matching ``where``), expired ones excluded even before
        the sweep; an exact where is counted from the indexes in one round trip."""
        return await count_rows(self._backend, self.meta, parse_query(self.meta, where))

    # Queries (issue 3): find_many, find_first and explain; see _query.py for the semantics.

    async def find_many(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: OrderBy | None = None,
        take: int | None = None,
        skip: int = 0,
        cursor: Any = None,
        select: Mapping[str, Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> list[M]:
        """Records matching ``where`` in ``order_by`` order (ties by id), paged by ``skip``/``take``
        or after the ``cursor`` id; ``select`` reads only some fields, both load relations."""
        query = parse_query(self.meta, where, order_by, take, skip, cursor)
        selection = parse_selection(self._schema, self.meta, select, include)
        found = await find_selected(self._backend, self._schema, self.meta, query, selection)
        return found  # type: ignore[return-value]

    async def find_first(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: OrderBy | None = None,
        skip: int = 0,
        cursor: Any = None,
        select: Mapping[str, Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> M | None:
        """The first record ``find_many`` would return, or None."""
        found = await self.find_many(
            where=where, order_by=order_by, take=1, skip=skip, cursor=cursor, select=select, include=include
        )
        return found[0] if found else None

    def explain(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        order_by: OrderBy | None = None,
        take: int | None = None,
        skip: int = 0,
        cursor: Any = None,
        count: bool = False,
    ) -> Plan:
        """How a find_many (or a count) would run: which indexes, whether it scans; no I/O."""
        query = parse_query(self.meta, where, order_by, take, skip, cursor)
        return build_plan(self.meta, query, "count" if count else "find")

    # Expiry: sessions, tokens and rate-limit buckets.

    async def touch(self, where: Mapping[str, Any], ttl: timedelta | None = None) -> M | None:
        """Give a record a fresh life of ``ttl`` (default: the model's ttl), as a sliding session
        does on each request; its unique claims are extended with it. None if no record matches."""
        life = ttl or self.meta.ttl
        if life is None:
            raise ValidationError(f"{self.meta.name} has no default ttl; pass ttl= to touch")
        op = UpdateOp(unique_locator(self.meta, where), {}, life)
        await self._engine.run([op])
        result: M | None = op.result
        return result

    refresh = touch

    async def ttl(self, where: Mapping[str, Any]) -> timedelta | None:
        """Remaining life of a record (millisecond precision), None if it never expires."""
        left = await record_ttl(self._backend, self.meta, unique_locator(self.meta, where), where)
        if left is None:
            raise self._not_found(where)
        return None if left < 0 else timedelta(milliseconds=left)

    async def sweep(self, *, batch: int = 1000) -> int:
        """Remove the index entries of expired records; returns how many records were swept.

        Safe while writers run (each batch is one atomic script) and one round trip when nothing
        is due. Reads and ``count`` are exact without it; it keeps index keys from growing.
        """
        swept = 0
        while True:
            result = await sweep_due(self._backend, self.meta, batch)
            swept += result.swept
            if result.examined < batch:
                return swept
