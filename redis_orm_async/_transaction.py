"""``orm.transaction()``: a unit of work applied in one MULTI/EXEC when the block exits.

What it promises: the queued writes land together or not at all, checked for uniqueness and
guarded against concurrent writers like any single write. What it does not: reads inside the
block do not see its queued writes, there is no isolation while the block runs, and once applied
nothing is rolled back. If the block raises, nothing queued is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ._engine.writes import UNSET, CreateOp, DeleteOp, TtlArg, UpdateOp, WriteEngine, WriteOp, validated
from ._errors import OrmError
from ._model.model import Model
from ._model.schema import Schema
from ._query.changes import parse_changes
from ._query.locate import unique_locator

M = TypeVar("M", bound=Model)
T = TypeVar("T")


class Pending(Generic[T]):
    """The outcome of a queued write, readable once the transaction has been applied."""

    def __init__(self, op: WriteOp) -> None:
        self._op = op
        self.applied = False

    @property
    def value(self) -> T:
        if not self.applied:
            raise OrmError("the transaction has not been applied yet")
        result: T = self._op.result
        return result


class TransactionRepository(Generic[M]):
    """Queues writes for one model; nothing is sent before the transaction exits."""

    def __init__(self, transaction: Transaction, model: type[M]) -> None:
        self._transaction = transaction
        self._meta = transaction.schema.meta(model)

    def create(self, data: M | Mapping[str, Any], *, ttl: TtlArg = UNSET) -> M:
        """Queue a create and return the record it will store (its id is already known)."""
        instance = validated(self._meta, data)
        self._transaction.queue(CreateOp(self._meta, instance, ttl))
        result: M = instance  # type: ignore[assignment]
        return result

    def update(
        self, where: Mapping[str, Any], data: Mapping[str, Any], *, ttl: TtlArg = UNSET
    ) -> Pending[M | None]:
        op = UpdateOp(unique_locator(self._meta, where), parse_changes(self._meta, data), ttl)
        return self._transaction.queue(op)

    def delete(self, where: Mapping[str, Any]) -> Pending[M | None]:
        return self._transaction.queue(DeleteOp(unique_locator(self._meta, where)))


class Transaction:
    def __init__(self, schema: Schema, engine: WriteEngine) -> None:
        self.schema = schema
        self._engine = engine
        self._ops: list[WriteOp] = []
        self._pending: list[Pending[Any]] = []
        self._closed = False

    def repo(self, model: type[M]) -> TransactionRepository[M]:
        return TransactionRepository(self, model)

    def queue(self, op: WriteOp) -> Pending[Any]:
        if self._closed:
            raise OrmError("this transaction has already exited")
        pending: Pending[Any] = Pending(op)
        self._ops.append(op)
        self._pending.append(pending)
        return pending

    async def commit(self) -> None:
        self._closed = True
        if self._ops:
            await self._engine.run(self._ops)
        for pending in self._pending:
            pending.applied = True

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
            self._ops.clear()
