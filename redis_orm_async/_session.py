"""``orm.session()``: an identity map with change tracking, written in one atomic step at exit.

redisca's request session, made async and without global state. Inside ``async with
orm.session() as s:`` each record is loaded once (``s.get(User, id)`` twice gives the same object),
the instances loaded and added are tracked, and when the block exits without an error every change
is written in ONE call of the write script: a create for each added instance, an update of only the
changed fields of each loaded instance (its index entries and unique claims moved with it), a
delete for each deleted one. If the block raises, nothing is sent.

Each update carries the record as it was loaded (``expect``): if anyone changed that record since,
the whole flush is refused with a retryable ``TransactionConflictError`` and nothing is written,
so a concurrent change is never silently overwritten; run the block again. A record that was
deleted (or expired) since it was loaded is left deleted: the session's update of it is dropped,
as if it had landed just before that delete. Changes are found by comparing each instance's
stored form with the form it was loaded in, so in-place changes (``user.tags.append(...)``) count
as much as assignments.

What it does not do: queries (``find_unique``, ``find_many``) read the server and do not see the
session's own unwritten changes (``get`` by id does find an added instance), and on Redis Cluster
one flush must stay within one model's keys, as ``orm.transaction()`` must (a flush that spans
models is refused with a ``QueryError`` and writes nothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from ._backends.protocol import Backend
from ._engine.built import IndexCheck, names_of_keys
from ._engine.lifecycle import validated
from ._engine.ops import Change, CreateOp, DeleteOp, UpdateOp, WriteOp, diff_changes
from ._engine.reads import fetch_rows, find_record
from ._engine.writes import WriteEngine
from ._errors import NotFoundError, OrmError, tag_backend_errors
from ._model.model import Model
from ._model.schema import ModelMeta, Schema
from ._query.locate import Locator, unique_locator
from ._query.parse import OrderBy
from ._query.ttl import UNSET, TtlArg, create_expiry
from ._repository import Repository

M = TypeVar("M", bound=Model)
Key = tuple[str, str]
"""A record's place in the identity map: its model's key base and its id text."""


@dataclass(eq=False, slots=True)
class _Entry:
    """One tracked instance: ``loaded`` is its hash as read (None until an added one is written)."""

    meta: ModelMeta
    instance: Model
    loaded: dict[str, str] | None
    expiry: int | None = None
    deleted: bool = False


@tag_backend_errors
class OrmSession:
    """A unit of work with an identity map; see the module docstring for what it promises."""

    def __init__(
        self, schema: Schema, backend: Backend, engine: WriteEngine, index_check: IndexCheck | None = None
    ) -> None:
        self._schema = schema
        self._backend = backend
        self._engine = engine
        self._check = index_check or IndexCheck(backend)
        self._entries: dict[Key, _Entry] = {}
        self._closed = False

    def _meta(self, model: type[Model]) -> ModelMeta:
        self._check_open()
        return self._schema.meta(model)

    def _check_open(self) -> None:
        if self._closed:
            raise OrmError("this session has exited; open a new one with orm.session()")

    def _tracked(self, meta: ModelMeta, id_text: str) -> _Entry | None:
        return self._entries.get((meta.keys.base, id_text))

    def _adopt(self, meta: ModelMeta, id_text: str, stored: dict[str, str]) -> Model | None:
        """The map's instance for a record just read: the one already tracked, else a new one."""
        entry = self._tracked(meta, id_text)
        if entry is None:
            entry = _Entry(meta, meta.decode(id_text, stored), dict(stored))
            self._entries[(meta.keys.base, id_text)] = entry
        return None if entry.deleted else entry.instance

    async def get(self, model: type[M], id: Any) -> M | None:
        """The record with this id, read once per session; the same object on every call."""
        return await self.find_unique(model, {"id": id})

    async def find_unique(self, model: type[M], where: Mapping[str, Any]) -> M | None:
        """The record with this id or unique value (as ``Repository.find_unique``, one round
        trip), through the identity map: a record already in the session is returned as the
        session holds it, and one tracked by id is not read again."""
        meta = self._meta(model)
        locator = unique_locator(meta, where)
        if locator.claim is not None:  # a unique not built for older records would miss them
            await self._check.require(meta, names_of_keys(meta, [locator.claim]))
        if locator.id_text is not None:
            entry = self._tracked(meta, locator.id_text)
            if entry is not None:
                return None if entry.deleted else entry.instance  # type: ignore[return-value]
        row = await find_record(self._backend, meta, locator, where)
        if row is None:
            return None
        id_text = locator.id_text if locator.id_text is not None else row["id"]
        return self._adopt(meta, id_text, row)  # type: ignore[return-value]

    async def find_unique_or_raise(self, model: type[M], where: Mapping[str, Any]) -> M:
        record = await self.find_unique(model, where)
        if record is None:
            raise NotFoundError.lookup(self._meta(model).name, where)
        return record

    async def find_many(
        self,
        model: type[M],
        *,
        where: Mapping[str, Any] | None = None,
        order_by: OrderBy | None = None,
        take: int | None = None,
        skip: int = 0,
        cursor: Any = None,
    ) -> list[M]:
        """Records as ``Repository.find_many`` finds them, through the identity map.

        Records new to the session are read once more as stored (one more round trip), so that
        each tracked instance and the hash its update will expect come from the same read; one
        deleted in between is left out.
        """
        meta = self._meta(model)
        repo: Repository[M] = Repository(
            self._schema, self._backend, self._engine, model, index_check=self._check
        )
        found = await repo.find_many(where=where, order_by=order_by, take=take, skip=skip, cursor=cursor)
        ids = [meta.id_text(record.id) for record in found]
        fresh = [id_text for id_text in dict.fromkeys(ids) if self._tracked(meta, id_text) is None]
        if fresh:
            for id_text, stored in (await fetch_rows(self._backend, meta, fresh, None)).items():
                self._adopt(meta, id_text, stored)
        out: list[M] = []
        for id_text in ids:
            entry = self._tracked(meta, id_text)
            if entry is not None and not entry.deleted:
                out.append(entry.instance)  # type: ignore[arg-type]
        return out

    def add(self, instance: M, *, ttl: TtlArg = UNSET) -> M:
        """Track a new instance; it is created when the session flushes (``ttl`` as in create)."""
        meta = self._meta(type(instance))
        validated(meta, instance)
        id_text = meta.id_text(instance.id)
        expiry = create_expiry(meta.name, ttl, meta.ttl)
        entry = self._tracked(meta, id_text)
        if entry is not None:
            if entry.instance is not instance:
                raise OrmError(
                    f"{meta.name}: the session already holds another instance with this id",
                    meta={"model": meta.name},
                )
            return instance
        self._entries[(meta.keys.base, id_text)] = _Entry(meta, instance, None, expiry)
        return instance

    def delete(self, instance: Model) -> None:
        """Delete a tracked instance when the session flushes (an added one is just dropped)."""
        meta = self._meta(type(instance))
        key = (meta.keys.base, meta.id_text(instance.id))
        entry = self._entries.get(key)
        if entry is None or entry.instance is not instance:
            raise OrmError(
                f"{meta.name}: delete takes an instance this session loaded or added",
                meta={"model": meta.name},
            )
        if entry.loaded is None:
            del self._entries[key]
        else:
            entry.deleted = True

    def is_modified(self, instance: Model) -> bool:
        """Whether flushing would write this instance (created, changed or deleted)."""
        for entry in self._entries.values():
            if entry.instance is instance:
                return entry.loaded is None or entry.deleted or bool(_changes(entry))
        return False

    @property
    def dirty(self) -> list[Model]:
        """The tracked instances that the next flush would write."""
        return [entry.instance for entry in self._entries.values() if self.is_modified(entry.instance)]

    async def flush(self) -> None:
        """Write every change now, in one atomic script call; nothing if nothing changed.

        Refused as a whole, with nothing written: ``TransactionConflictError`` (retryable) when a
        changed or deleted record was changed by someone else since it was loaded,
        ``UniqueConstraintError`` when a created or changed value is taken. If the call fails
        without an answer (a timeout, a cancellation), it was applied entirely or not at all; a
        second flush of the same changes is then refused as a conflict rather than applied twice.
        """
        self._check_open()
        planned: list[tuple[Key, _Entry, WriteOp, list[Change]]] = []
        for key, entry in self._entries.items():
            meta = entry.meta
            locator = Locator(meta, id_text=key[1])
            if entry.deleted:
                planned.append((key, entry, DeleteOp(meta, locator, expect=entry.loaded), []))
            elif entry.loaded is None:
                planned.append((key, entry, CreateOp(meta, entry.instance, entry.expiry), []))
            elif changes := _changes(entry):
                update = UpdateOp(meta, locator, changes, "keep", expect=entry.loaded)
                planned.append((key, entry, update, changes))
        if not planned:
            return
        await self._engine.run([op for _, _, op, _ in planned])
        for key, entry, done, changes in planned:
            if isinstance(done, CreateOp):
                entry.loaded = {"id": done.id_text, **dict(done.writes)}
            elif isinstance(done, UpdateOp) and done.result is not None and entry.loaded is not None:
                entry.loaded = _applied(entry.loaded, changes)
            else:  # deleted, by this session or (an update found nothing) by someone else
                del self._entries[key]

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            self._closed = True
            self._entries.clear()


def _changes(entry: _Entry) -> list[Change]:
    assert entry.loaded is not None
    return diff_changes(entry.meta, entry.loaded, entry.instance)


def _applied(stored: Mapping[str, str], changes: list[Change]) -> dict[str, str]:
    """The hash after the server applied these set/null changes (what the script writes)."""
    after = dict(stored)
    for change in changes:
        if change.kind == "s":
            after[change.name] = change.value
        else:
            after.pop(change.name, None)
    return after
