"""``Repository[M]``: the typed async API of one model over one backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from ._backends.protocol import Backend
from ._engine.built import IndexCheck, names_of_keys, relation_indexes
from ._engine.expiry import sweep_due
from ._engine.lifecycle import (
    create_records,
    delete_matching,
    delete_op_for,
    model_of,
    plain_update_op,
    update_one,
    update_op_for,
    validated,
    write_matching,
)
from ._engine.loading import find_selected, materialize
from ._engine.ops import CreateOp, DeleteOp, TouchOp, WriteOp, check_supplied_id
from ._engine.overlay import write_conflict
from ._engine.prepared import PreparedWrite
from ._engine.progress import QUIET, Progress
from ._engine.reads import count_rows, find_record, read_rows, record_exists, record_ttl
from ._engine.streaming import stream_rows
from ._engine.writes import WriteEngine
from ._errors import NotFoundError, QueryError, ValidationError, tag_backend_errors
from ._model.expressions import Condition
from ._model.model import Model
from ._model.schema import ModelMeta, Schema
from ._query.changes import FieldChange, parse_changes
from ._query.locate import Locator, equalities, is_unique_where, unique_locator
from ._query.match import matcher
from ._query.parse import OrderBy, Query, Where, combine_where, parse_query, range_paging
from ._query.planner import Operation, Plan, build_plan
from ._query.selection import ALL, Selection, parse_selection, selection_fields
from ._query.ttl import UNSET, Expiry, TtlArg, create_expiry, touch_expiry, update_expiry

M = TypeVar("M", bound=Model)
P = TypeVar("P")
Cond = Condition | bool
"""A field expression; type checkers read ``User.age >= 10`` as ``bool``."""
Select = Mapping[str, Any]
STREAM_BATCH = 500


@tag_backend_errors
class Repository(Generic[M]):
    """Create, read, update and delete one model's records; every write is one atomic step.

    Reads take a where as field expressions (``users.find_many(User.age >= 10)``), as a dict
    (``where={"age": {"gte": 10}}``), or both (ANDed); one query model answers either form.
    ``select`` takes a mapping (partial records, typed ``Any``) or a projection class (a Pydantic
    model or TypedDict naming some of the fields), whose instances the read returns, typed."""

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
        if locator.claim is not None and not self._check.settled(self.meta):
            await self._check.require(self.meta, names_of_keys(self.meta, [locator.claim]))

    async def _planned(self, query: Query, operation: Operation, selection: Selection = ALL) -> None:
        """Refuse a query (and the relation loads of its selection) that needs an index older
        records have no entries in, rather than answer it short."""
        plan = build_plan(self.meta, query, operation)
        await self._check.require(self.meta, names_of_keys(self.meta, plan.keys))
        await self._relations_built(selection)

    async def _relations_built(self, selection: Selection) -> None:
        for holder, names in relation_indexes(self._schema, self.meta, selection):
            await self._check.require(holder, names)

    def _selection(self, select: Any, include: Mapping[str, Any] | None = None) -> Selection:
        return parse_selection(self._schema, self.meta, select, include)

    async def _shaped(self, records: Sequence[Model], selection: Selection) -> list[Any]:
        """Written records as ``select`` shapes them (relations it names are loaded)."""
        if selection is ALL or not records:
            return list(records)
        meta = self.meta
        rows = []
        for record in records:
            stored = {name: text for name, text in meta.encode(record).items() if text is not None}
            rows.append({"id": meta.id_text(record.id), **stored})
        return await materialize(self._backend, self._schema, meta, rows, selection)

    @overload
    async def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = ..., select: None = None) -> M: ...
    @overload
    async def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = ..., select: type[P]) -> P: ...
    @overload
    async def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = ..., select: Select) -> Any: ...
    async def create(
        self, data: M | Mapping[str, Any], *, ttl: TtlArg = UNSET, select: Select | type[Any] | None = None
    ) -> Any:
        """Store a new record with its indexes and unique claims, or raise UniqueConstraintError.

        ``ttl``: UNSET takes the model's ttl, None never expires, a timedelta is its life.
        ``select`` shapes what comes back (the write itself is the same).
        """
        meta = self.meta
        selection = self._selection(select)
        op = CreateOp(meta, validated(meta, data), create_expiry(meta.name, ttl, meta.ttl))
        await self._engine.run([op])
        return (await self._shaped([op.result], selection))[0]

    @overload
    async def create_many(
        self, data: Sequence[M | Mapping[str, Any]], *, ttl: TtlArg = ..., select: None = None
    ) -> list[M]: ...
    @overload
    async def create_many(
        self, data: Sequence[M | Mapping[str, Any]], *, ttl: TtlArg = ..., select: type[P]
    ) -> list[P]: ...
    @overload
    async def create_many(
        self, data: Sequence[M | Mapping[str, Any]], *, ttl: TtlArg = ..., select: Select
    ) -> list[Any]: ...
    async def create_many(
        self,
        data: Sequence[M | Mapping[str, Any]],
        *,
        ttl: TtlArg = UNSET,
        select: Select | type[Any] | None = None,
    ) -> list[Any]:
        """Create many records; all are validated first, and each chunk of 500 is all-or-nothing."""
        meta = self.meta
        if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
            raise ValidationError(
                f"{meta.name}: create_many takes a list of records, not {type(data).__name__}"
            )
        selection = self._selection(select)
        expiry = create_expiry(meta.name, ttl, meta.ttl)
        records = [validated(meta, item) for item in data]
        await create_records(self._engine, meta, records, expiry)
        return await self._shaped(records, selection)

    @overload
    async def find_unique(
        self, where: Mapping[str, Any], *, select: None = None, include: Mapping[str, Any] | None = None
    ) -> M | None: ...
    @overload
    async def find_unique(
        self, where: Mapping[str, Any], *, select: type[P], include: None = None
    ) -> P | None: ...
    @overload
    async def find_unique(self, where: Mapping[str, Any], *, select: Select, include: None = None) -> Any: ...
    async def find_unique(
        self,
        where: Mapping[str, Any],
        *,
        select: Select | type[Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> Any:
        """The record with this id or unique value (``{"email": v}`` or ``{"email": {"eq": v}}``),
        or None; ``select``/``include`` as find_many.

        One round trip (a unique value goes claim to record inside one read-only script), and a
        claim's record is returned only if it still holds the value."""
        locator = unique_locator(self.meta, where)
        selection = self._selection(select, include)
        await self._claim_built(locator)
        await self._relations_built(selection)
        fields = None if selection is ALL else selection_fields(self.meta, selection)
        row = await find_record(self._backend, self.meta, locator, where, fields)
        if row is None:
            return None
        if selection is not ALL:
            return (await materialize(self._backend, self._schema, self.meta, [row], selection))[0]
        return self.meta.decode(row["id"], row)

    async def find_unique_or_raise(self, where: Mapping[str, Any]) -> M:
        record = await self.find_unique(where)
        if record is None:
            raise self._not_found(where)
        return record

    def _not_found(self, where: Mapping[str, Any]) -> NotFoundError:
        return NotFoundError.lookup(self.meta.name, where)

    async def exists(self, where: Mapping[str, Any]) -> bool:
        """Whether a record has this id or unique value; one round trip."""
        where = equalities(where) if isinstance(where, Mapping) else where
        return await record_exists(self._backend, self.meta, await self._located(where), where)

    async def raw(self, where: Mapping[str, Any]) -> dict[str, str] | None:
        """The record's HASH exactly as it is in Redis (stored field names, stored text, the
        ``id`` field included), or None: for debugging, migrations and other tools. Read-only:
        the ORM only ever writes a record through its own writes, which keep the indexes."""
        where = equalities(where) if isinstance(where, Mapping) else where
        found = await find_record(self._backend, self.meta, await self._located(where), where)
        return None if found is None else dict(found)

    async def _first_match(self, where: Where, order_by: OrderBy | None, write: Any) -> Model | None:
        """Apply a write to the first record a non-unique ``where`` selects in ``order_by`` order
        (id order by default), as the original ORM does; the write carries the record as read, so
        a record changed or gone since is read and chosen again, never clobbered."""
        meta = self.meta
        query = parse_query(meta, where, order_by, 1)
        await self._planned(query, "find")

        async def attempt() -> Model | None:
            rows = await read_rows(self._backend, meta, query)
            if not rows:
                return None
            op: WriteOp = write(rows[0]["id"], dict(rows[0]))
            await self._engine.run([op])
            if op.result is None:
                raise write_conflict(meta)
            result: Model = op.result
            return result

        return await self._engine.retrying(attempt)

    @overload
    async def update(
        self,
        where: Where,
        data: Mapping[str, Any],
        *,
        ttl: TtlArg = ...,
        order_by: OrderBy | None = None,
        select: None = None,
    ) -> M | None: ...
    @overload
    async def update(
        self, where: Where, data: Mapping[str, Any], *, ttl: TtlArg = ..., order_by: OrderBy | None = None,
        select: type[P],
    ) -> P | None: ...  # fmt: skip
    @overload
    async def update(
        self, where: Where, data: Mapping[str, Any], *, ttl: TtlArg = ..., order_by: OrderBy | None = None,
        select: Select,
    ) -> Any: ...  # fmt: skip
    async def update(
        self,
        where: Where,
        data: Mapping[str, Any],
        *,
        ttl: TtlArg = UNSET,
        order_by: OrderBy | None = None,
        select: Select | type[Any] | None = None,
    ) -> Any:
        """Change only the given fields and move their index entries; None if no record matches.

        ``where`` names one record by its id or a unique value, or is any where (dict or field
        expressions): then the first record it selects in ``order_by`` order is updated.
        ``{"hits": {"increment": 1}}`` is exact under concurrency and for any int. The record keeps
        its expiry unless ``ttl`` is given (a timedelta resets it, None removes it).
        """
        meta = self.meta
        changes = parse_changes(meta, data)
        expiry = update_expiry(meta.name, ttl)
        selection = self._selection(select)
        result: Model | None
        if is_unique_where(meta, where) and order_by is None:
            assert isinstance(where, Mapping)
            locator = unique_locator(meta, where)
            await self._claim_built(locator)
            result = await update_one(self._engine, meta, locator, changes, expiry)
        else:
            result = await self._first_match(where, order_by, update_op_for(meta, changes, expiry))
        return None if result is None else (await self._shaped([result], selection))[0]

    async def update_many(self, where: Where | None, data: Mapping[str, Any], *, ttl: TtlArg = UNSET) -> int:
        """Update every record ``where`` selects, in chunks of 500; returns how many changed."""
        meta = self.meta
        changes = parse_changes(meta, data)
        make = update_op_for(meta, changes, update_expiry(meta.name, ttl))
        query = parse_query(meta, where)
        await self._planned(query, "ids")
        return await write_matching(self._engine, meta, query, matcher(meta, query.where), make)

    @overload
    async def upsert(
        self, where: Mapping[str, Any], create: Mapping[str, Any], update: Mapping[str, Any], *,
        ttl: TtlArg = ..., update_ttl: TtlArg = ..., select: None = None,
    ) -> M: ...  # fmt: skip
    @overload
    async def upsert(
        self, where: Mapping[str, Any], create: Mapping[str, Any], update: Mapping[str, Any], *,
        ttl: TtlArg = ..., update_ttl: TtlArg = ..., select: type[P],
    ) -> P: ...  # fmt: skip
    @overload
    async def upsert(
        self, where: Mapping[str, Any], create: Mapping[str, Any], update: Mapping[str, Any], *,
        ttl: TtlArg = ..., update_ttl: TtlArg = ..., select: Select,
    ) -> Any: ...  # fmt: skip
    async def upsert(
        self,
        where: Mapping[str, Any],
        create: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        ttl: TtlArg = UNSET,
        update_ttl: TtlArg = UNSET,
        select: Select | type[Any] | None = None,
    ) -> Any:
        """Update the record ``where`` finds, or create it from ``create`` merged with ``where``,
        in one atomic step and one round trip (a counter created on first use and incremented
        after: ``upsert(where, create={"hits": 1}, update={"hits": {"increment": 1}})``).

        Fields named in ``where`` are the conflict target: ``create`` must agree with them and
        ``update`` cannot change them. ``ttl`` is the life of a record the upsert creates (as in
        ``create``); ``update_ttl`` what happens to an existing record's expiry (as ``ttl`` in
        ``update``: by default it is kept, so a rate-limit window never slides). An upsert by id
        may name the id of a model whose ids are generated: it creates that id only if it is free.
        """
        selection = self._selection(select)
        locator, changes, expiry, create_op = self._plan_upsert(where, create, update, ttl, update_ttl)
        await self._claim_built(locator)
        result = await update_one(self._engine, self.meta, locator, changes, expiry, create=create_op)
        assert result is not None
        return (await self._shaped([result], selection))[0]

    def _prepared_upsert(
        self,
        where: Mapping[str, Any],
        create: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        ttl: TtlArg,
        stand_ins: Sequence[str],
    ) -> PreparedWrite | None:
        """``upsert`` by id planned once with stand-in texts, for a caller that makes the same
        upsert over and over (see ``_engine/prepared.py``); None for a model with index entries,
        claims or a max_life, whose words derive texts from the values, or changes the server
        cannot apply alone."""
        meta = self.meta
        if meta.indexed_fields or meta.uniques or meta.max_life is not None:
            return None
        locator, changes, expiry, create_op = self._plan_upsert(where, create, update, ttl, UNSET)
        op = plain_update_op(meta, locator, changes, expiry, create_op)
        if locator.id_text is None or op is None:
            return None
        return PreparedWrite.of(self._engine, op, stand_ins)

    def _plan_upsert(
        self,
        where: Mapping[str, Any],
        create: Mapping[str, Any],
        update: Mapping[str, Any],
        ttl: TtlArg,
        update_ttl: TtlArg,
    ) -> tuple[Locator, dict[str, FieldChange], Expiry, CreateOp]:
        """``upsert``'s arguments checked and turned into what its write needs, before any I/O."""
        meta = self.meta
        locator = unique_locator(meta, where)
        where = equalities(where)
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
        return locator, parse_changes(meta, update), update_expiry(meta.name, update_ttl), create_op

    async def delete(self, where: Where, *, order_by: OrderBy | None = None) -> M | None:
        """Delete one record with its index entries and claims; returns it as it was, or None.

        ``where`` names the record by its id or a unique value, or is any where: then the first
        record it selects in ``order_by`` order (id order by default) is deleted."""
        meta = self.meta
        if is_unique_where(meta, where) and order_by is None:
            assert isinstance(where, Mapping)
            op = DeleteOp(meta, await self._located(where))
            await self._engine.run([op])
            deleted: M | None = op.result
            return deleted
        result: M | None = await self._first_match(where, order_by, delete_op_for(meta))  # type: ignore[assignment]
        return result

    async def delete_many(self, where: Where | None) -> int:
        """Delete every record ``where`` selects; returns how many. An equality on an indexed
        field (every session of one user) costs one round trip per 1,000 records; any other where
        reads and tests each record, in chunks of 500."""
        query = parse_query(self.meta, where)
        await self._planned(query, "ids")
        return await delete_matching(self._engine, self.meta, query, matcher(self.meta, query.where))

    async def count(self, *conditions: Cond, where: Where | None = None) -> int:
        """Exact number of live records (matching the conditions and ``where``), expired ones
        excluded even before the sweep; an exact where is counted from the indexes in one round
        trip."""
        where = _positional_where(conditions, where)
        query = parse_query(self.meta, combine_where(conditions, where))
        await self._planned(query, "count")
        return await count_rows(self._backend, self.meta, query)

    # Queries: find_many, find_first (find_one), stream and explain; see _query/parse.py.

    def _query(
        self,
        conditions: Sequence[Any],
        where: Any,
        order_by: Any,
        take: int | None,
        skip: int,
        cursor: Any,
    ) -> Any:
        order_by, take, skip = range_paging(conditions, order_by, take, skip)
        return parse_query(self.meta, combine_where(conditions, where), order_by, take, skip, cursor)

    @overload
    async def find_many(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None,
        take: int | None = None, skip: int = 0, cursor: Any = None, select: None = None,
        include: Mapping[str, Any] | None = None,
    ) -> list[M]: ...  # fmt: skip
    @overload
    async def find_many(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None,
        take: int | None = None, skip: int = 0, cursor: Any = None, select: type[P], include: None = None,
    ) -> list[P]: ...  # fmt: skip
    @overload
    async def find_many(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None,
        take: int | None = None, skip: int = 0, cursor: Any = None, select: Select, include: None = None,
    ) -> list[Any]: ...  # fmt: skip
    async def find_many(
        self,
        *conditions: Cond,
        where: Where | None = None,
        order_by: OrderBy | None = None,
        take: int | None = None,
        skip: int = 0,
        cursor: Any = None,
        select: Select | type[Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> list[Any]:
        """Records matching the conditions and ``where`` in ``order_by`` order (ties by id), paged
        by ``skip``/``take`` or after the ``cursor`` id; ``select`` reads only some fields, both
        load relations."""
        where = _positional_where(conditions, where)
        query = self._query(conditions, where, order_by, take, skip, cursor)
        selection = self._selection(select, include)
        await self._planned(query, "find", selection)
        return await find_selected(self._backend, self._schema, self.meta, query, selection)

    @overload
    async def find_first(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None, skip: int = 0,
        cursor: Any = None, select: None = None, include: Mapping[str, Any] | None = None,
    ) -> M | None: ...  # fmt: skip
    @overload
    async def find_first(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None, skip: int = 0,
        cursor: Any = None, select: type[P], include: None = None,
    ) -> P | None: ...  # fmt: skip
    @overload
    async def find_first(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None, skip: int = 0,
        cursor: Any = None, select: Select, include: None = None,
    ) -> Any: ...  # fmt: skip
    async def find_first(
        self,
        *conditions: Cond,
        where: Where | None = None,
        order_by: OrderBy | None = None,
        skip: int = 0,
        cursor: Any = None,
        select: Select | type[Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> Any:
        """The first record ``find_many`` would return, or None (``find_one`` is the same)."""
        where = _positional_where(conditions, where)
        query = self._query(conditions, where, order_by, 1, skip, cursor)
        selection = self._selection(select, include)
        await self._planned(query, "find", selection)
        found = await find_selected(self._backend, self._schema, self.meta, query, selection)
        return found[0] if found else None

    find_one = find_first

    @overload
    def stream(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None,
        batch: int = STREAM_BATCH, select: None = None, include: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[M]: ...  # fmt: skip
    @overload
    def stream(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None,
        batch: int = STREAM_BATCH, select: type[P], include: None = None,
    ) -> AsyncIterator[P]: ...  # fmt: skip
    @overload
    def stream(
        self, *conditions: Cond, where: Where | None = None, order_by: OrderBy | None = None,
        batch: int = STREAM_BATCH, select: Select, include: None = None,
    ) -> AsyncIterator[Any]: ...  # fmt: skip
    def stream(
        self,
        *conditions: Cond,
        where: Where | None = None,
        order_by: OrderBy | None = None,
        batch: int = STREAM_BATCH,
        select: Select | type[Any] | None = None,
        include: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Any]:
        """Every matching record in order, ``batch`` at a time: ``async for user in
        users.stream(User.age >= 18)``. Each batch is one page read after the last row of the
        one before (a cursor on the query's order), so memory holds one batch and each batch
        costs the round trips of one page, however large the result."""
        where = _positional_where(conditions, where)
        query = self._query(conditions, where, order_by, None, 0, None)
        if query.take is not None or query.skip:
            raise QueryError(f"{self.meta.name}: stream walks the whole result; it takes no take or skip")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise QueryError(f"{self.meta.name}: stream's batch must be a positive int, got {batch!r}")
        selection = self._selection(select, include)
        return self._stream(query, selection, batch)

    async def _stream(self, query: Any, selection: Selection, batch: int) -> AsyncIterator[Any]:
        await self._planned(query, "find", selection)
        fields = selection_fields(self.meta, selection)
        async for rows in stream_rows(self._backend, self.meta, query, fields, batch):
            for item in await materialize(self._backend, self._schema, self.meta, rows, selection):
                yield item

    def explain(
        self,
        *conditions: Cond,
        where: Where | None = None,
        order_by: OrderBy | None = None,
        take: int | None = None,
        skip: int = 0,
        cursor: Any = None,
        count: bool = False,
    ) -> Plan:
        """How a find_many (or a count) would run: which indexes, whether it scans; no I/O."""
        where = _positional_where(conditions, where)
        query = self._query(conditions, where, order_by, take, skip, cursor)
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


def _positional_where(conditions: Sequence[Any], where: Any) -> Any:
    """A dict given positionally (``find_many({"age": 1})``) is refused with a pointer to
    ``where=``: positional arguments are field expressions."""
    for item in conditions:
        if isinstance(item, Mapping):
            raise QueryError("pass a dict where as where={...}; positional arguments are field expressions")
    return where


def _text(meta: ModelMeta, name: str, value: Any) -> Any:
    """A where value and a create value agree when they store the same text."""
    if name == "id":
        return meta.id_text(value)
    field = meta.field(name)
    if field is None:
        return value
    text = field.text_of(value)
    return None if text is None else field.codec.token(text)
