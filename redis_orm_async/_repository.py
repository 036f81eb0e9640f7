"""``Repository[M]``: the typed async API of one model over one backend."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from ._backends.protocol import Backend
from ._engine.built import IndexCheck, names_of_keys, relation_indexes
from ._engine.expiry import sweep_due
from ._engine.lifecycle import (
    BULK_CHUNK,
    check_distinct,
    delete_matching,
    model_of,
    update_one,
    update_op_for,
    validated,
    write_matching,
)
from ._engine.loading import find_selected, materialize
from ._engine.ops import CreateOp, DeleteOp, TouchOp, check_supplied_id
from ._engine.progress import QUIET, Progress
from ._engine.reads import count_rows, find_record, record_exists, record_ttl
from ._engine.writes import WriteEngine
from ._errors import NotFoundError, ValidationError, tag_backend_errors
from ._model.model import Model
from ._model.schema import ModelMeta, Schema
from ._query.changes import parse_changes
from ._query.locate import Locator, unique_locator
from ._query.match import matcher
from ._query.parse import OrderBy, Query, parse_query
from ._query.planner import Operation, Plan, build_plan
from ._query.selection import ALL, Selection, parse_selection, selection_fields
from ._query.ttl import UNSET, TtlArg, create_expiry, touch_expiry, update_expiry

M = TypeVar("M", bound=Model)


@tag_backend_errors
class Repository(Generic[M]):
    """Create, read, update and delete one model's records; every write is one atomic step."""

    def __init__(
        self,
        schema: Schema,
        backend: Backend,
        engine: WriteEngine,
        model: type[M],
        *,
        index_check: IndexCheck | None = None,
    ) -> None:
        self._schema = schema
        self._backend = backend
        self._engine = engine
        self.model = model
        self.meta = schema.meta(model)
        self._check = index_check or IndexCheck(backend)

    async def _located(self, where: Mapping[str, Any]) -> Locator:
        locator = unique_locator(self.meta, where)
        await self._claim_built(locator)
        return locator

    async def _claim_built(self, locator: Locator) -> None:
        """Refuse a unique lookup whose unique is not built for older records (a missing claim
        would read as "no such record", and an upsert would take the value twice); called once
        the call's arguments are checked, so that bad input still fails before any I/O."""
        if locator.claim is not None:
            await self._check.require(self.meta, names_of_keys(self.meta, [locator.claim]))

    async def _planned(self, query: Query, operation: Operation, selection: Selection = ALL) -> None:
        """Refuse a query (and the relation loads of its selection) that needs an index older
        records have no entries in, rather than answer it short."""
        plan = build_plan(self.meta, query, operation)
        await self._check.require(self.meta, names_of_keys(self.meta, plan.keys))
        for holder, names in relation_indexes(self._schema, self.meta, selection):
            await self._check.require(holder, names)

    async def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = UNSET) -> M:
        """Store a new record with its indexes and unique claims, or raise UniqueConstraintError.

        ``ttl``: UNSET takes the model's ttl, None never expires, a timedelta is its life.
        """
        meta = self.meta
        op = CreateOp(meta, validated(meta, data), create_expiry(meta.name, ttl, meta.ttl))
        await self._engine.run([op])
        result: M = op.result
        return result

    async def create_many(self, data: Sequence[M | Mapping[str, Any]], *, ttl: TtlArg = UNSET) -> list[M]:
        """Create many records; all are validated first, and each chunk of 500 is all-or-nothing."""
        meta = self.meta
        if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
            raise ValidationError(
                f"{meta.name}: create_many takes a list of records, not {type(data).__name__}"
            )
        expiry = create_expiry(meta.name, ttl, meta.ttl)
        ops = [CreateOp(meta, validated(meta, item), expiry) for item in data]
        check_distinct(ops)
        for start in range(0, len(ops), BULK_CHUNK):
            await self._engine.run(ops[start : start + BULK_CHUNK])
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
        await self._claim_built(locator)
        for holder, names in relation_indexes(self._schema, self.meta, selection):
            await self._check.require(holder, names)
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
        return NotFoundError.lookup(self.meta.name, where)

    async def raw(self, where: Mapping[str, Any]) -> dict[str, str] | None:
        """The record's HASH exactly as it is in Redis (stored field names, stored text, the
        ``id`` field included), or None: for debugging, migrations and other tools. Read-only:
        the ORM only ever writes a record through its own writes, which keep the indexes."""
        found = await find_record(self._backend, self.meta, await self._located(where), where)
        return None if found is None else dict(found)

    async def exists(self, where: Mapping[str, Any]) -> bool:
        """Whether a record has this id or unique value; one round trip."""
        return await record_exists(self._backend, self.meta, await self._located(where), where)

    async def update(
        self, where: Mapping[str, Any], data: Mapping[str, Any], *, ttl: TtlArg = UNSET
    ) -> M | None:
        """Change only the given fields and move their index entries; None if no record matches.

        ``{"hits": {"increment": 1}}`` is exact under concurrency and for any int. The record keeps
        its expiry unless ``ttl`` is given (a timedelta resets it, None removes it).
        """
        meta = self.meta
        locator = unique_locator(meta, where)
        changes = parse_changes(meta, data)
        expiry = update_expiry(meta.name, ttl)
        await self._claim_built(locator)
        result: M | None = await update_one(
            self._engine, meta, locator, changes, expiry
        )  # type: ignore[assignment]
        return result

    async def update_many(
        self, where: Mapping[str, Any], data: Mapping[str, Any], *, ttl: TtlArg = UNSET
    ) -> int:
        """Update every record ``where`` selects, in chunks of 500; returns how many changed."""
        meta = self.meta
        changes = parse_changes(meta, data)
        make = update_op_for(meta, changes, update_expiry(meta.name, ttl))
        query = parse_query(meta, where)
        await self._planned(query, "ids")
        return await write_matching(self._engine, meta, query, matcher(meta, query.where), make)

    async def upsert(
        self,
        where: Mapping[str, Any],
        create: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        ttl: TtlArg = UNSET,
        update_ttl: TtlArg = UNSET,
    ) -> M:
        """Update the record ``where`` finds, or create it from ``create`` merged with ``where``,
        in one atomic step and one round trip (a counter created on first use and incremented
        after: ``upsert(where, create={"hits": 1}, update={"hits": {"increment": 1}})``).

        Fields named in ``where`` are the conflict target: ``create`` must agree with them and
        ``update`` cannot change them. ``ttl`` is the life of a record the upsert creates (as in
        ``create``); ``update_ttl`` what happens to an existing record's expiry (as ``ttl`` in
        ``update``: by default it is kept, so a rate-limit window never slides). An upsert by id
        may name the id of a model whose ids are generated: it creates that id only if it is free.
        """
        meta = self.meta
        locator = unique_locator(meta, where)
        if not isinstance(create, Mapping) or not isinstance(update, Mapping):
            raise ValidationError(f"{meta.name}: upsert takes create and update mappings")
        for name, value in where.items():
            if name in create and _text(meta, name, create[name]) != _text(meta, name, value):
                raise ValidationError(
                    f"{meta.name}: create.{name} must match where.{name}",
                    meta={"model": meta.name, "field": name},
                )
            if name in update and _text(meta, name, update[name]) != _text(meta, name, value):
                raise ValidationError(
                    f"{meta.name}.{name} is the upsert's conflict target and cannot change",
                    meta={"model": meta.name, "field": name},
                )
        if "id" not in where:
            check_supplied_id(meta, create)  # upsert by id names its id on purpose: create-if-absent
        instance = model_of(meta, {**dict(create), **dict(where)})
        create_op = CreateOp(meta, instance, create_expiry(meta.name, ttl, meta.ttl))
        changes = parse_changes(meta, update)
        expiry = update_expiry(meta.name, update_ttl)
        await self._claim_built(locator)
        result = await update_one(self._engine, meta, locator, changes, expiry, create=create_op)
        assert result is not None
        upserted: M = result  # type: ignore[assignment]
        return upserted

    async def delete(self, where: Mapping[str, Any]) -> M | None:
        """Delete one record with its index entries and claims; returns it as it was, or None."""
        op = DeleteOp(self.meta, await self._located(where))
        await self._engine.run([op])
        result: M | None = op.result
        return result

    async def delete_many(self, where: Mapping[str, Any]) -> int:
        """Delete every record ``where`` selects; returns how many. An equality on an indexed
        field (every session of one user) costs one round trip per 1,000 records; any other where
        reads and tests each record, in chunks of 500."""
        query = parse_query(self.meta, where)
        await self._planned(query, "ids")
        return await delete_matching(self._engine, self.meta, query, matcher(self.meta, query.where))

    async def count(self, where: Mapping[str, Any] | None = None) -> int:
        """Exact number of live records (matching ``where``), expired ones excluded even before
        the sweep; an exact where is counted from the indexes in one round trip."""
        query = parse_query(self.meta, where)
        await self._planned(query, "count")
        return await count_rows(self._backend, self.meta, query)

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
        await self._planned(query, "find", selection)
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

    async def touch(self, where: Mapping[str, Any], ttl: TtlArg = UNSET) -> M | None:
        """Give a record a fresh life, as a sliding session does on each request: ``ttl``
        (default: the model's ttl; None: never expires). Its unique claims follow it. None if no
        record matches."""
        meta = self.meta
        locator = unique_locator(meta, where)
        op = TouchOp(meta, locator, touch_expiry(meta.name, ttl, meta.ttl))
        await self._claim_built(locator)
        await self._engine.run([op])
        result: M | None = op.result
        return result

    refresh = touch

    async def ttl(self, where: Mapping[str, Any]) -> timedelta | None:
        """Remaining life of a record (millisecond precision), None if it never expires."""
        left = await record_ttl(self._backend, self.meta, await self._located(where), where)
        if left is None:
            raise self._not_found(where)
        return None if left < 0 else timedelta(milliseconds=left)

    async def sweep(self, *, batch: int = 1000, progress: Progress = QUIET) -> int:
        """Remove the index entries of expired records; returns how many records were swept.

        Safe while writers run (each batch is one atomic script) and one round trip when nothing
        is due. Reads and ``count`` are exact without it; it keeps index keys from growing.
        """
        swept = 0
        while True:
            done, examined = await sweep_due(self._engine, self.meta, batch)
            swept += done
            progress.advance(examined)
            if examined < batch:
                return swept


def _text(meta: ModelMeta, name: str, value: Any) -> Any:
    """A where value and a create value agree when they store the same text."""
    if name == "id":
        return meta.id_text(value)
    field = meta.field(name)
    if field is None:
        return value
    text = field.text_of(value)
    return None if text is None else field.codec.token(text)
