"""The write engine: create, update and delete as operations applied in one guarded MULTI/EXEC.

An operation names the records and claim keys it must read; the engine reads them (under WATCH,
or whatever optimistic guard the backend has), lets each operation turn the reads into commands,
and applies every command of every operation in one MULTI/EXEC. When another writer interferes,
the engine re-reads and tries again, a bounded number of times. When an operation learns that it
needs a key nobody could know in advance (the record a unique value points to, say), it asks for
it and the engine starts over with that key included.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import anyio
import pydantic

from .._backends.protocol import Backend, Command
from .._errors import (
    TransactionConflictError,
    UniqueConstraintError,
    ValidationError,
)
from .._model.model import Model
from .._model.schema import ModelMeta, UniqueConstraint
from .._model.state import IndexEntries, index_diff, index_entries
from .._query.changes import FieldChange
from .._query.locate import Locator
from .expiry import ghost_payload


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""``ttl=UNSET`` keeps the model default on create and the current expiry on update."""

TtlArg = timedelta | None | _Unset


@dataclass(frozen=True, slots=True)
class RecordRef:
    meta: ModelMeta
    id_text: str

    @property
    def key(self) -> str:
        return self.meta.keys.record(self.id_text)


@dataclass
class View:
    """What the reads returned, updated as each operation of a batch is applied."""

    records: dict[RecordRef, dict[str, str] | None] = field(default_factory=dict)
    expiries: dict[RecordRef, int | None] = field(default_factory=dict)
    claims: dict[str, str | None] = field(default_factory=dict)
    now_ms: int | None = None


class MissingReads(Exception):
    """An operation needs keys that were not read; the engine retries with them."""

    def __init__(
        self,
        records: Sequence[RecordRef] = (),
        claims: Sequence[str] = (),
        time: bool = False,
    ) -> None:
        super().__init__("more reads needed")
        self.records = list(records)
        self.claims = list(claims)
        self.time = time


class Reads:
    """What a batch must read: records, claim keys and the server clock, each named once
    (ordered dicts used as sets, since a ``create_many`` chunk merges hundreds of them)."""

    def __init__(
        self, records: Iterable[RecordRef] = (), claims: Iterable[str] = (), time: bool = False
    ) -> None:
        self.records = dict.fromkeys(records)
        self.claims = dict.fromkeys(claims)
        self.time = time

    def merge(self, other: Reads | MissingReads) -> None:
        if isinstance(other, Reads):  # already ordered sets: no copy per merged operation
            self.records.update(other.records)
            self.claims.update(other.claims)
        else:
            self.records.update(dict.fromkeys(other.records))
            self.claims.update(dict.fromkeys(other.claims))
        self.time = self.time or other.time


class WriteOp:
    """One create, update or delete; ``result`` holds what the caller gets back."""

    result: Any = None

    def reads(self) -> Reads:
        raise NotImplementedError

    def apply(self, view: View) -> list[Command]:
        raise NotImplementedError


def record_of(view: View, ref: RecordRef) -> dict[str, str] | None:
    if ref not in view.records:
        raise MissingReads(records=[ref])
    return view.records[ref]


def claim_holder(view: View, claim: str) -> str | None:
    if claim not in view.claims:
        raise MissingReads(claims=[claim])
    return view.claims[claim]


def check_claims(
    view: View, meta: ModelMeta, id_text: str, taken: Iterable[str], entries: IndexEntries
) -> None:
    """Raise if a claim this record wants points at another record that still exists."""
    for claim in taken:
        holder = claim_holder(view, claim)
        if holder is None or holder == id_text:
            continue
        if record_of(view, RecordRef(meta, holder)) is None:
            continue  # the holder expired or vanished: its claim is stale and can be taken over
        constraint = _constraint_named(meta, entries.claims[claim])
        raise UniqueConstraintError(
            f"{meta.name}: unique constraint {constraint.name!r} violated on "
            f"{', '.join(constraint.fields)}",
            meta={"model": meta.name, "constraint": constraint.name, "fields": constraint.fields},
        )


def _constraint_named(meta: ModelMeta, name: str) -> UniqueConstraint:
    return next(c for c in meta.uniques if c.name == name)


def expire_at(view: View, ttl: timedelta) -> int:
    if view.now_ms is None:
        raise MissingReads(time=True)
    return view.now_ms + max(1, int(ttl.total_seconds() * 1000))


def write_record_commands(
    ref: RecordRef,
    old_hash: Mapping[str, str] | None,
    new_encoded: Mapping[str, str | None],
    old_expiry: int | None,
    new_expiry: int | None,
    old_entries: IndexEntries | None,
    new_entries: IndexEntries,
) -> list[Command]:
    """HSET/HDEL the changed fields, move index entries, and keep claims and expiry in step."""
    meta, id_text, key = ref.meta, ref.id_text, ref.key
    commands: list[Command] = []
    if old_hash is None:
        mapping: list[str] = ["id", id_text]
        for name, text in new_encoded.items():
            if text is not None:
                mapping.extend((name, text))
        commands.append(("HSET", key, *mapping))
    else:
        changed: list[str] = []
        removed: list[str] = []
        for name, text in new_encoded.items():
            if text is None:
                if name in old_hash:
                    removed.append(name)
            elif old_hash.get(name) != text:
                changed.extend((name, text))
        if changed:
            commands.append(("HSET", key, *changed))
        if removed:
            commands.append(("HDEL", key, *removed))
    moves, released, taken = index_diff(id_text, old_entries, new_entries)
    commands.extend(moves)
    commands.extend(("DEL", claim) for claim in released)
    for claim in taken:
        if new_expiry is None:
            commands.append(("SET", claim, id_text))
        else:
            commands.append(("SET", claim, id_text, "PXAT", new_expiry))
    kept_claims = [claim for claim in new_entries.claims if claim not in taken]
    exp_key = meta.keys.expiry()
    if new_expiry is not None:
        if new_expiry != old_expiry:
            commands.append(("PEXPIREAT", key, new_expiry))
            commands.extend(("PEXPIREAT", claim, new_expiry) for claim in kept_claims)
            commands.append(("ZADD", exp_key, new_expiry, id_text))
        if new_expiry != old_expiry or moves:
            ghost = ghost_payload(meta, key, new_entries)
            commands.append(("HSET", meta.keys.ghosts(), id_text, ghost))
    elif old_expiry is not None:
        commands.append(("PERSIST", key))
        commands.extend(("PERSIST", claim) for claim in kept_claims)
        commands.append(("ZREM", exp_key, id_text))
        commands.append(("HDEL", meta.keys.ghosts(), id_text))
    return commands


def delete_record_commands(
    ref: RecordRef, old_entries: IndexEntries, old_expiry: int | None
) -> list[Command]:
    meta, id_text = ref.meta, ref.id_text
    commands: list[Command] = [("DEL", ref.key)]
    moves, released, _ = index_diff(id_text, old_entries, None)
    commands.extend(moves)
    commands.extend(("DEL", claim) for claim in released)
    if old_expiry is not None:
        commands.append(("ZREM", meta.keys.expiry(), id_text))
        commands.append(("HDEL", meta.keys.ghosts(), id_text))
    return commands


def validated(meta: ModelMeta, data: Mapping[str, Any] | Model) -> Model:
    if isinstance(data, meta.model):
        return data
    if isinstance(data, Model):
        raise ValidationError(f"expected {meta.name} data, got a {type(data).__name__}")
    if not isinstance(data, Mapping):
        raise ValidationError(f"{meta.name} data must be a mapping or a {meta.name}")
    try:
        return meta.model.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        raise ValidationError(
            f"invalid {meta.name}: {exc}", errors=[dict(e) for e in exc.errors()], cause=exc
        ) from exc


def resolve_ttl(meta: ModelMeta, ttl: TtlArg) -> timedelta | None:
    if isinstance(ttl, _Unset):
        return meta.ttl
    if ttl is not None and ttl.total_seconds() <= 0:
        raise ValidationError(f"{meta.name}: ttl must be positive, got {ttl}")
    return ttl


class CreateOp(WriteOp):
    def __init__(self, meta: ModelMeta, instance: Model, ttl: TtlArg = UNSET) -> None:
        self.meta = meta
        self.instance = instance
        self.ref = RecordRef(meta, meta.id_text(instance.id))
        self.ttl = resolve_ttl(meta, ttl)
        self.encoded = meta.encode(instance)
        self.entries = index_entries(meta, self.ref.id_text, self.encoded)
        self.result = instance

    def reads(self) -> Reads:
        records = [] if self.meta.id_kind == "generated" else [self.ref]
        return Reads(records=records, claims=list(self.entries.claims), time=self.ttl is not None)

    def apply(self, view: View) -> list[Command]:
        if self.meta.id_kind != "generated" and record_of(view, self.ref) is not None:
            raise UniqueConstraintError(
                f"{self.meta.name}: a record with id {self.ref.id_text!r} already exists",
                meta={"model": self.meta.name, "constraint": "id", "fields": ("id",)},
            )
        check_claims(view, self.meta, self.ref.id_text, self.entries.claims, self.entries)
        expiry = None if self.ttl is None else expire_at(view, self.ttl)
        commands = write_record_commands(self.ref, None, self.encoded, None, expiry, None, self.entries)
        view.records[self.ref] = {"id": self.ref.id_text, **{
            k: v for k, v in self.encoded.items() if v is not None
        }}
        view.expiries[self.ref] = expiry
        for claim in self.entries.claims:
            view.claims[claim] = self.ref.id_text
        return commands


def locator_reads(locator: Locator) -> Reads:
    if locator.id_text is not None:
        return Reads(records=[RecordRef(locator.meta, locator.id_text)])
    assert locator.claim is not None
    return Reads(claims=[locator.claim])


def locator_resolve(locator: Locator, view: View) -> RecordRef | None:
    if locator.id_text is not None:
        return RecordRef(locator.meta, locator.id_text)
    assert locator.claim is not None
    holder = claim_holder(view, locator.claim)
    return None if holder is None else RecordRef(locator.meta, holder)


RecordTest = Callable[[Mapping[str, str]], bool]
"""A bulk write's ``where``, compiled: tested on the stored record inside the guarded write, so
that a record changed since it was selected is left alone."""


class UpdateOp(WriteOp):
    """Apply field changes to one record; ``changes`` maps field names to already-valid values."""

    def __init__(
        self,
        locator: Locator,
        changes: Mapping[str, FieldChange],
        ttl: TtlArg = UNSET,
        *,
        create: Model | None = None,
        create_ttl: TtlArg = UNSET,
        still_matches: RecordTest | None = None,
    ) -> None:
        self.meta = locator.meta
        self.locator = locator
        self.still_matches = still_matches
        self.changes = dict(changes)
        self.ttl = ttl
        if not isinstance(ttl, _Unset):
            resolve_ttl(self.meta, ttl)
        self.create = None if create is None else CreateOp(self.meta, create, create_ttl)

    def reads(self) -> Reads:
        reads = locator_reads(self.locator)
        reads.time = not isinstance(self.ttl, _Unset) and self.ttl is not None
        if self.create is not None:
            reads.merge(self.create.reads())
        return reads

    def apply(self, view: View) -> list[Command]:
        ref = locator_resolve(self.locator, view)
        old_hash = None if ref is None else record_of(view, ref)
        if old_hash is not None and self.still_matches is not None and not self.still_matches(old_hash):
            old_hash = None
        if ref is None or old_hash is None:
            if self.create is not None:
                commands = self.create.apply(view)
                self.result = self.create.result
                return commands
            self.result = None
            return []
        current = self.meta.decode(ref.id_text, old_hash)
        merged = {name: getattr(current, name) for name in self.meta.model.model_fields}
        for name, change in self.changes.items():
            merged[name] = change.apply(merged.get(name))
        updated = validated(self.meta, merged)
        new_encoded = self.meta.encode(updated)
        old_expiry = view.expiries.get(ref)
        if isinstance(self.ttl, _Unset):
            new_expiry = old_expiry
        else:
            new_expiry = None if self.ttl is None else expire_at(view, self.ttl)
        new_entries = index_entries(self.meta, ref.id_text, new_encoded)
        old_entries = index_entries(self.meta, ref.id_text, old_hash)
        old_claims = old_entries.claims
        taken = [claim for claim in new_entries.claims if claim not in old_claims]
        check_claims(view, self.meta, ref.id_text, taken, new_entries)
        commands = write_record_commands(
            ref, old_hash, new_encoded, old_expiry, new_expiry, old_entries, new_entries
        )
        view.records[ref] = {"id": ref.id_text, **{
            k: v for k, v in new_encoded.items() if v is not None
        }}
        view.expiries[ref] = new_expiry
        for claim in old_claims:
            if claim not in new_entries.claims:
                view.claims[claim] = None
        for claim in new_entries.claims:
            view.claims[claim] = ref.id_text
        self.result = updated
        return commands


class DeleteOp(WriteOp):
    def __init__(self, locator: Locator, *, still_matches: RecordTest | None = None) -> None:
        self.meta = locator.meta
        self.locator = locator
        self.still_matches = still_matches

    def reads(self) -> Reads:
        return locator_reads(self.locator)

    def apply(self, view: View) -> list[Command]:
        ref = locator_resolve(self.locator, view)
        old_hash = None if ref is None else record_of(view, ref)
        if old_hash is not None and self.still_matches is not None and not self.still_matches(old_hash):
            old_hash = None
        if ref is None or old_hash is None:
            self.result = None
            return []
        old_entries = index_entries(self.meta, ref.id_text, old_hash)
        commands = delete_record_commands(ref, old_entries, view.expiries.get(ref))
        self.result = self.meta.decode(ref.id_text, old_hash)
        view.records[ref] = None
        view.expiries[ref] = None
        for claim in old_entries.claims:
            view.claims[claim] = None
        return commands


def _read_commands(reads: Reads) -> list[Command]:
    commands: list[Command] = []
    for ref in reads.records:
        commands.append(("HGETALL", ref.key))
        commands.append(("ZSCORE", ref.meta.keys.expiry(), ref.id_text))
    if reads.claims:
        commands.append(("MGET", *reads.claims))
    if reads.time:
        commands.append(("TIME",))
    return commands


def _view_from(reads: Reads, replies: list[Any]) -> View:
    view = View()
    position = 0
    for ref in reads.records:
        stored = replies[position]
        score = replies[position + 1]
        position += 2
        view.records[ref] = stored or None
        view.expiries[ref] = None if score is None else int(float(score))
    if reads.claims:
        for claim, holder in zip(reads.claims, replies[position], strict=True):
            view.claims[claim] = holder
        position += 1
    if reads.time:
        seconds, micros = replies[position]
        view.now_ms = int(seconds) * 1000 + int(micros) // 1000
    return view


@dataclass
class WriteEngine:
    """Runs operations against one backend with a bounded optimistic retry."""

    backend: Backend
    max_attempts: int = 64

    async def run(self, ops: Sequence[WriteOp]) -> None:
        learned = Reads()
        attempt = 0
        while True:
            reads = Reads()
            for op in ops:
                reads.merge(op.reads())
            reads.merge(learned)

            def plan(replies: list[Any], reads: Reads = reads) -> list[Command]:
                view = _view_from(reads, replies)
                commands: list[Command] = []
                for op in ops:
                    commands.extend(op.apply(view))
                return commands

            watch = [*(ref.key for ref in reads.records), *reads.claims]
            attempt += 1
            missed = False
            try:
                result = await self.backend.guarded(watch, _read_commands(reads), plan)
            except MissingReads as missing:
                learned.merge(missing)
                missed = True
            else:
                if result is not None:
                    return
            if attempt >= self.max_attempts:
                raise TransactionConflictError(
                    f"gave up after {attempt} attempts: concurrent writers kept changing the "
                    "same records or unique values",
                    backend_kind=self.backend.features.kind,
                )
            if missed:
                continue
            await anyio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))
