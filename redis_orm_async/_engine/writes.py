"""The write engine: a batch of operations applied as one atomic step, in one round trip.

The batch runs as one call of ``_scripts/write.lua``: the server reads each record's state,
checks unique claims against the records they point to, and applies the record, index, claim
and expiry changes together, so a write costs one round trip and concurrent writers of one
record queue on the server instead of retrying. A server that refuses scripts gets the same
semantics from ``Overlay`` under WATCH/MULTI/EXEC, with a bounded, jittered retry.

Writes that need the record before they can say what to write (an update the model validates as a
whole, a float counter, a bulk write re-testing its where) read it, compute the change, and send it
with the record they read as ``expect``: if it changed meanwhile, they read again.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from .._backends.protocol import Backend, Command, ScriptsRefused
from .._errors import OrmError, TransactionConflictError, ValidationError
from .._model.model import Model
from .._model.schema import ModelMeta
from .._model.state import layout
from .._scripts import load
from .built import SINCE_FIELD, index_names
from .bulk import BulkWords
from .ops import (
    CleanOp,
    CreateOp,
    DeleteIndexedOp,
    PruneOp,
    RebuildOp,
    SweepOp,
    TouchOp,
    UpdateOp,
    WriteOp,
)
from .overlay import (
    MissingReads,
    Overlay,
    id_taken,
    record_reads,
    record_state,
    unique_violation,
    write_conflict,
)

WRITE_SCRIPT = load("write")
SWEEP_PER_WRITE = 8
"""Due expired records each write cleans up as it goes, so a model that is written keeps no backlog."""
T = TypeVar("T")


@dataclass
class _Needs:
    """What a batch must read under WATCH on a server without scripts."""

    records: dict[tuple[str, str], tuple[ModelMeta, str]] = field(default_factory=dict)
    claims: dict[str, None] = field(default_factory=dict)
    time: bool = False

    def add(self, missing: MissingReads) -> None:
        for meta, id_text in missing.records:
            self.records[(meta.keys.base, id_text)] = (meta, id_text)
        self.claims.update(dict.fromkeys(missing.claims))
        self.time = self.time or missing.time


def _initial_needs(ops: Sequence[WriteOp]) -> _Needs:
    needs = _Needs()
    for op in ops:
        locator = getattr(op, "locator", None)
        if locator is not None and locator.id_text is not None:
            needs.add(MissingReads(records=[(op.meta, locator.id_text)]))
        elif locator is not None and locator.claim is not None:
            needs.add(MissingReads(claims=[locator.claim]))
        creates = [op] if isinstance(op, CreateOp) else []
        if isinstance(op, UpdateOp) and op.create is not None:
            creates.append(op.create)
        for create in creates:
            claims = create.claims
            record = [] if create.fresh else [(create.meta, create.id_text)]
            needs.add(MissingReads(records=record, claims=list(claims)))
            needs.time = needs.time or create.ttl_ms is not None
        if isinstance(op, CleanOp):
            needs.add(MissingReads(records=[(op.meta, id_text) for id_text in op.ids]))
        if isinstance(op, RebuildOp):
            needs.add(MissingReads(records=[(op.meta, op.id_text)], time=True))
        if isinstance(op, PruneOp) and op.member_kind == "c":
            needs.add(MissingReads(claims=op.members))
        elif isinstance(op, PruneOp):
            owners = [m.split("\x00", 1)[-1] if op.member_kind == "l" else m for m in op.members]
            needs.add(MissingReads(records=[(op.meta, owner) for owner in owners]))
        if isinstance(op, UpdateOp | TouchOp) and isinstance(op.expiry, int):
            needs.time = True
    return needs


class WriteEngine:
    """Runs batches of write operations against one backend."""

    def __init__(
        self, backend: Backend, *, max_attempts: int = 64, sweep_per_write: int = SWEEP_PER_WRITE
    ) -> None:
        self.backend = backend
        self.max_attempts = max_attempts
        self.sweep_per_write = sweep_per_write

    async def run(self, ops: Sequence[WriteOp]) -> None:
        """Apply every operation or none; each op's ``result`` is set afterwards."""
        if not ops:
            return
        if self.backend.features.scripting:
            try:
                replies = await self._scripted(ops)
            except ScriptsRefused:
                if any(isinstance(op, DeleteIndexedOp) for op in ops):
                    raise  # script-only: the caller has a plain path for it
                replies = await self._watched(ops)
        else:
            replies = await self._watched(ops)
        for op, reply in zip(ops, replies, strict=True):
            op.accept(reply)

    async def _scripted(self, ops: Sequence[WriteOp]) -> list[Any]:
        keys, args = self.script_call(ops)
        return await self.run_script(ops, keys, args)

    async def run_script(self, ops: Sequence[WriteOp], keys: list[str], args: list[str | int]) -> list[Any]:
        """One call of the write script with the words ``script_call`` built for ``ops``; the
        replies of the ops, or the refusal of the first one that failed (nothing was written)."""
        reply = await self.backend.eval(WRITE_SCRIPT, keys, args)
        if reply[0] == "err":
            raise _script_error([op.meta for op in ops], reply)
        if len(reply) == 1:  # a bulk create: its creates answer nothing
            return [None] * len(ops)
        return list(reply[1:])

    async def run_bulk(
        self, meta: ModelMeta, words: list[str], records: Sequence[Model], ttl_ms: int | None
    ) -> None:
        """One chunk of fresh ``records``, all or none, from its ``BulkWords``; a server that
        refuses scripts gets the same records as create ops."""
        if self.backend.features.scripting:
            args: list[str | int] = [1, *layout(meta).words, self.sweep_per_write, "B"]
            args.extend(words)
            try:
                reply = await self.backend.eval(WRITE_SCRIPT, [meta.keys.ids()], args)
            except ScriptsRefused:
                pass
            else:
                if reply[0] == "err":
                    raise _script_error([meta] * len(records), reply)
                return
        await self._watched([CreateOp(meta, record, ttl_ms) for record in records])

    def script_call(self, ops: Sequence[WriteOp]) -> tuple[list[str], list[str | int]]:
        """The keys and arguments of the write script call that applies ``ops``."""
        if len(ops) == 1:  # the common write: no batch bookkeeping
            (op,) = ops
            meta = op.meta
            head: list[str | int] = [1, *layout(meta).words, self.sweep_per_write]
            if isinstance(op, CreateOp) and op.fresh:
                return [meta.keys.ids()], [*head, "B", *_bulk_words(meta, [op])]
            return [meta.keys.ids()], [*head, "-", 1, op.kind, 1, *op.words()]
        metas: dict[str, tuple[int, ModelMeta]] = {}
        for op in ops:
            metas.setdefault(op.meta.keys.base, (len(metas) + 1, op.meta))
        args: list[str | int] = [len(metas)]
        for _, meta in metas.values():
            args.extend(layout(meta).words)
        args.append(self.sweep_per_write)
        creates = [op for op in ops if isinstance(op, CreateOp) and op.fresh]
        if len(metas) == 1 and len(creates) == len(ops) and len({op.ttl_ms for op in creates}) == 1:
            args.append("B")
            args.extend(_bulk_words(ops[0].meta, creates))
        else:
            args.extend(("-", len(ops)))
            for op in ops:
                args.extend((op.kind, metas[op.meta.keys.base][0]))
                args.extend(op.words())
        return [meta.keys.ids() for _, meta in metas.values()], args

    async def _watched(self, ops: Sequence[WriteOp]) -> list[Any]:
        """The same batch through WATCH/MULTI/EXEC, for servers that refuse scripts."""
        due = await self._due_ids(ops)
        needs = _initial_needs(ops)
        for op in ops:
            if isinstance(op, SweepOp):
                ids = due[op.meta.keys.base]
                needs.add(MissingReads(records=[(op.meta, id_text) for id_text in ids], time=True))
        creating = _creating(ops)
        needs.time = needs.time or bool(creating)
        for attempt in range(1, self.max_attempts + 1):
            answers: list[Any] = []
            reads, shape = _read_commands(needs)
            reads.extend(("EXISTS", meta.keys.ids()) for meta in creating)

            def plan(
                replies: list[Any], shape: list[tuple[str, Any]] = shape, answers: list[Any] = answers
            ) -> list[Command]:
                overlay = _overlay_from(shape, replies)
                overlay.due = due
                answers.clear()
                answers.extend(overlay.apply(op) for op in ops)
                empty = [
                    meta
                    for meta, found in zip(creating, replies[len(replies) - len(creating) :], strict=True)
                    if not found
                ]
                return overlay.commands + _first_record_markers(empty, overlay.now)

            watch = [meta.keys.record(id_text) for meta, id_text in needs.records.values()] + list(
                needs.claims
            )
            try:
                outcome = await self.backend.guarded(watch, reads, plan)
            except MissingReads as missing:
                needs.add(missing)
                continue
            if outcome is not None:
                return answers
            await _backoff(attempt)
        raise _gave_up(self.backend, self.max_attempts)

    async def _due_ids(self, ops: Sequence[WriteOp]) -> dict[str, list[str]]:
        sweeps = [op for op in ops if isinstance(op, SweepOp)]
        if not sweeps:
            return {}
        seconds, micros = await self.backend.execute(("TIME",))
        now = int(seconds) * 1000 + int(micros) // 1000
        due: dict[str, list[str]] = {}
        for op in sweeps:
            keys = op.meta.keys
            found = await self.backend.execute(
                ("ZRANGEBYSCORE", keys.expiry(), "-inf", f"({now}", "LIMIT", 0, op.limit)
            )
            due[keys.base] = list(found)
        return due

    async def retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run a read-then-write ``attempt`` until the record it read has not changed under it."""
        for tries in range(1, self.max_attempts + 1):
            try:
                return await attempt()
            except TransactionConflictError:
                if tries == self.max_attempts:
                    raise
            await _backoff(tries)
        raise _gave_up(self.backend, self.max_attempts)


async def _backoff(attempt: int) -> None:
    await anyio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))


def _gave_up(backend: Backend, attempts: int) -> TransactionConflictError:
    return TransactionConflictError(
        f"gave up after {attempts} attempts: concurrent writers kept changing the same records",
        backend_kind=backend.features.kind,
    )


def _creating(ops: Sequence[WriteOp]) -> list[ModelMeta]:
    """The models the batch may create a record of (creates, and upserts that may create)."""
    found: dict[str, ModelMeta] = {}
    for op in ops:
        if isinstance(op, CreateOp) or (isinstance(op, UpdateOp) and op.create is not None):
            found.setdefault(op.meta.keys.base, op.meta)
    return list(found.values())


def _first_record_markers(empty: Sequence[ModelMeta], now_ms: int | None) -> list[Command]:
    """The write script's marker of a model's first record (see ``mark_empty_model`` in
    write.lua): every index it has is complete. ``HSETNX``, as the model was found empty without
    being watched: a racing first create writes the same names."""
    stamp = str(now_ms)
    return [
        ("HSETNX", meta.keys.built(), name, stamp)
        for meta in empty
        for name in (SINCE_FIELD, *index_names(meta))
    ]


def _read_commands(needs: _Needs) -> tuple[list[Command], list[tuple[str, Any]]]:
    """The reads of a watched batch, and what each reply is (``_overlay_from`` reads them back)."""
    commands: list[Command] = []
    shape: list[tuple[str, Any]] = []
    for meta, id_text in needs.records.values():
        commands.extend(record_reads(meta, id_text))
        shape.append(("record", (meta, id_text)))
    if needs.claims:
        commands.append(("MGET", *needs.claims))
        shape.append(("claims", list(needs.claims)))
    if needs.time:
        commands.append(("TIME",))
        shape.append(("time", None))
    return commands, shape


def _overlay_from(shape: list[tuple[str, Any]], replies: list[Any]) -> Overlay:
    overlay = Overlay()
    position = 0
    for kind, detail in shape:
        if kind == "record":
            meta, id_text = detail
            overlay.records[(meta.keys.base, id_text)] = record_state(
                meta, id_text, replies[position : position + 5]
            )
            position += 5
        elif kind == "claims":
            overlay.holders.update(zip(detail, replies[position], strict=True))
            position += 1
        else:
            seconds, micros = replies[position]
            overlay.now = int(seconds) * 1000 + int(micros) // 1000
            position += 1
    return overlay


def _bulk_words(meta: ModelMeta, creates: Sequence[CreateOp]) -> list[str]:
    """The bulk create of fresh records of one model, all with the same ttl."""
    ttl_ms = creates[0].ttl_ms
    chunk = BulkWords(meta, "" if ttl_ms is None else str(ttl_ms))
    for op in creates:
        chunk.add(op.id_text, op.encoded)
    return chunk.words()


def _script_error(metas: Sequence[ModelMeta], reply: list[Any]) -> OrmError:
    """The error of the script's refusal; ``metas``: the model of each op of the batch."""
    index, code = int(reply[1]), str(reply[2])
    if code == "unknown_op" or not 1 <= index <= len(metas):
        return OrmError(f"the write script refused the batch: {code}")
    meta = metas[index - 1]
    base = reply[3] if len(reply) > 3 else meta.keys.base
    owner = next((other for other in metas if other.keys.base == base), meta)
    if code == "unique":
        return unique_violation(owner, str(reply[4]))
    if code == "exists":
        return id_taken(owner)
    if code == "conflict":
        return write_conflict(owner)
    if code in ("null", "not_int"):
        name = str(reply[4])
        what = "cannot increment a null value" if code == "null" else "the stored value is not an integer"
        return ValidationError(f"{owner.name}.{name}: {what}", meta={"model": owner.name, "field": name})
    return OrmError(f"the write script refused the batch: {code}")
