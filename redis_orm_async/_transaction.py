"""``orm.transaction()``: a unit of work applied as one atomic step when the block exits.

What it promises: the queued writes land together or not at all, in one script call (or one
MULTI/EXEC on a server without scripts), checked for uniqueness like any single write. What it
does not: reads inside the block do not see its queued writes, there is no isolation while the
block runs, and once applied nothing is rolled back. If the block raises, nothing queued is sent.
An update that must read its record first (see ``Repository.update``) reads it when the block
exits and is applied only if the record has not changed since.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ._engine.built import IndexCheck, names_of_keys
from ._engine.lifecycle import changed_record, read_located, validated
from ._engine.ops import CreateOp, DeleteOp, UpdateOp, WriteOp, diff_changes, plain_changes
from ._engine.writes import WriteEngine
from ._errors import OrmError
from ._model.model import Model
from ._model.schema import ModelMeta, Schema
from ._query.changes import FieldChange, parse_changes
from ._query.locate import Locator, unique_locator
from ._query.ttl import UNSET, Expiry, TtlArg, create_expiry, update_expiry

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class Pending(Generic[T]):
    """The outcome of a queued write, readable once the transaction has been applied."""

    def __init__(self) -> None:
        self.op: WriteOp | None = None
        self.applied = False

    @property
    def value(self) -> T:
        if not self.applied:
            raise OrmError("the transaction has not been applied yet")
        result: T = None if self.op is None else self.op.result  # type: ignore[assignment]
        return result


class _Queued:
    """A queued update whose operation is built at exit (after reading, where it must read)."""

    def __init__(
        self,
        meta: ModelMeta,
        locator: Locator,
        changes: Mapping[str, FieldChange],
        expiry: Expiry,
        pending: Pending[Any],
    ) -> None:
        self.meta = meta
        self.locator = locator
        self.changes = changes
        self.expiry = expiry
        self.pending = pending

    async def build(self, engine: WriteEngine) -> WriteOp | None:
        meta = self.meta
        plain = plain_changes(meta, self.changes)
        if plain is not None:
            return UpdateOp(meta, self.locator, plain, self.expiry)
        found = await read_located(engine.backend, meta, self.locator)
        if found is None:
            return None
        id_text, stored = found
        updated = changed_record(meta, id_text, stored, self.changes)
        return UpdateOp(
            meta,
            Locator(meta, id_text=id_text),
            diff_changes(meta, stored, updated),
            self.expiry,
            expect=stored,
        )


class TransactionRepository(Generic[M]):
    """Queues writes for one model; nothing is sent before the transaction exits."""

    def __init__(self, transaction: Transaction, model: type[M]) -> None:
        self._transaction = transaction
        self._meta = transaction.schema.meta(model)

    def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = UNSET) -> M:
        """Queue a create and return the record it will store (its id is already known)."""
        meta = self._meta
        instance = validated(meta, data)
        self._transaction.queue(CreateOp(meta, instance, create_expiry(meta.name, ttl, meta.ttl)))
        result: M = instance  # type: ignore[assignment]
        return result

    def update(
        self, where: Mapping[str, Any], data: Mapping[str, Any], *, ttl: TtlArg = UNSET
    ) -> Pending[M | None]:
        meta = self._meta
        pending: Pending[M | None] = Pending()
        queued = _Queued(
            meta,
            self._transaction.located(meta, where),
            parse_changes(meta, data),
            update_expiry(meta.name, ttl),
            pending,
        )
        self._transaction.queue(queued)
        return pending

    def delete(self, where: Mapping[str, Any]) -> Pending[M | None]:
        return self._transaction.queue(DeleteOp(self._meta, self._transaction.located(self._meta, where)))


class Transaction:
    def __init__(self, schema: Schema, engine: WriteEngine, index_check: IndexCheck | None = None) -> None:
        self.schema = schema
        self._engine = engine
        self._check = index_check or IndexCheck(engine.backend)
        self._queue: list[tuple[WriteOp | _Queued, Pending[Any]]] = []
        self._claims: list[tuple[ModelMeta, str]] = []
        """The unique lookups of the queued writes, checked against the built-index marker."""
        self._closed = False

    def located(self, meta: ModelMeta, where: Mapping[str, Any]) -> Locator:
        locator = unique_locator(meta, where)
        if locator.claim is not None:
            self._claims.append((meta, locator.claim))
        return locator

    def repo(self, model: type[M]) -> TransactionRepository[M]:
        return TransactionRepository(self, model)

    def queue(self, item: WriteOp | _Queued) -> Pending[Any]:
        if self._closed:
            raise OrmError("this transaction has already exited")
        pending: Pending[Any] = item.pending if isinstance(item, _Queued) else Pending()
        self._queue.append((item, pending))
        return pending

    async def commit(self) -> None:
        self._closed = True
        for meta, claim in self._claims:  # a unique not built for older records would miss them
            await self._check.require(meta, names_of_keys(meta, [claim]))
        if self._queue:
            await self._engine.retrying(self._apply)
        for _, pending in self._queue:
            pending.applied = True

    async def _apply(self) -> None:
        ops: list[WriteOp] = []
        for item, pending in self._queue:
            op = await item.build(self._engine) if isinstance(item, _Queued) else item
            pending.op = op
            if op is not None:
                ops.append(op)
        await self._engine.run(ops)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.commit()
        else:
            self._closed = True
            self._queue.clear()
