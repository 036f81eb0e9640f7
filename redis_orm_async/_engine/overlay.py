"""The write script's semantics in Python, for servers that refuse scripts.

``Overlay`` is ``_scripts/write.lua`` line for line: the same record states, the same checks and
the same commands, over values read beforehand under WATCH. When an operation needs a value that
was not read (the record a claim points to, say), it raises ``MissingReads`` and the engine reads
again with it included. Tests run every operation through both and compare what they leave.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._backends.protocol import Command
from .._errors import TransactionConflictError, UniqueConstraintError, ValidationError
from .._model.schema import ModelMeta
from .._model.state import (
    LEX_SEPARATOR,
    Entries,
    Facts,
    capped,
    claim_keys,
    entries,
    field_fact,
    index_entries,
    layout,
    parse_state_line,
    state_line,
)
from .._query.locate import Locator
from .._query.ttl import Expiry
from .ops import (
    CleanOp,
    CreateOp,
    DeleteOp,
    PruneOp,
    RebuildOp,
    SweepOp,
    TouchOp,
    UpdateOp,
    WriteOp,
)

RecordKey = tuple[str, str]
"""A record in the overlay: the model's key base and the id."""


class MissingReads(Exception):
    """An operation needs values that were not read; the engine reads again with them."""

    def __init__(
        self, records: Sequence[tuple[ModelMeta, str]] = (), claims: Sequence[str] = (), time: bool = False
    ) -> None:
        super().__init__("more reads needed")
        self.records = list(records)
        self.claims = list(claims)
        self.time = time


@dataclass
class RecordState:
    """One record as a write sees it: its hash (empty when it does not exist) and its state."""

    meta: ModelMeta
    id_text: str
    key: str
    exists: bool
    hash: dict[str, str]
    line: str
    facts: Facts
    exp: int | None
    listed: bool
    pttl: int

    @property
    def leftovers(self) -> bool:
        """Gone (expired, evicted, deleted by hand), with index entries or a state line left."""
        return not self.exists and (self.line != "" or self.exp is not None or self.listed)


_INT_TEXT = re.compile(r"-?(0|[1-9][0-9]*)")


def is_int_text(text: str | None) -> bool:
    """A canonical integer, as ``str(int)`` writes it and the write script accepts."""
    return text is not None and text != "-0" and _INT_TEXT.fullmatch(text) is not None


@dataclass
class Overlay:
    """What the reads returned, changed as each operation of a batch applies."""

    records: dict[RecordKey, RecordState] = field(default_factory=dict)
    holders: dict[str, str | None] = field(default_factory=dict)
    now: int | None = None
    due: dict[str, list[str]] = field(default_factory=dict)
    commands: list[Command] = field(default_factory=list)

    def record(self, meta: ModelMeta, id_text: str) -> RecordState:
        found = self.records.get((meta.keys.base, id_text))
        if found is None:
            raise MissingReads(records=[(meta, id_text)])
        return found

    def holder(self, claim: str) -> str | None:
        if claim not in self.holders:
            raise MissingReads(claims=[claim])
        return self.holders[claim]

    def now_ms(self) -> int:
        if self.now is None:
            raise MissingReads(time=True)
        return self.now

    def claims_of(self, state: RecordState) -> dict[str, str]:
        if not state.exists:
            return {}
        return claim_keys(state.meta, state.id_text, state.facts)

    def move_entries(self, id_text: str, old: Entries, new: Entries, *, add_all: bool) -> None:
        """Remove the entries ``new`` drops, add what it adds (all of it when ``add_all``: a
        rebuild cannot trust the old entries), and release the old claims still held."""
        out = self.commands
        for key, (member, _score) in old.zsets.items():
            after = new.zsets.get(key)
            if after is None or after[0] != member:
                out.append(("ZREM", key, member))
        for key, (member, score) in new.zsets.items():
            if add_all or old.zsets.get(key) != (member, score):
                out.append(("ZADD", key, score, member))
        for claim in old.claims:
            if claim not in new.claims and self.holder(claim) == id_text:
                out.append(("DEL", claim))
                self.holders[claim] = None

    def transition(
        self,
        state: RecordState,
        new_facts: Facts | None,
        new_exp: int | None,
        hash_writes: Sequence[tuple[str, str]],
        hash_deletes: Sequence[str],
        fresh: bool,
    ) -> None:
        meta, id_text = state.meta, state.id_text
        old = entries(meta, id_text, state.facts) if state.exists or state.leftovers else Entries()
        new = entries(meta, id_text, new_facts) if new_facts is not None else Entries()
        for claim, constraint in new.claims.items():
            holder = self.holder(claim)
            if holder is not None and holder != id_text:
                other = self.record(meta, holder)
                if other.exists and claim in self.claims_of(other):
                    raise unique_violation(meta, constraint)
        out = self.commands
        if new_facts is None:
            if state.exists:
                out.append(("DEL", state.key))
        elif fresh:
            mapping: list[str] = ["id", id_text]
            for name, text in hash_writes:
                mapping.extend((name, text))
            out.append(("HSET", state.key, *mapping))
        else:
            if hash_writes:
                out.append(("HSET", state.key, *(part for pair in hash_writes for part in pair)))
            if hash_deletes:
                out.append(("HDEL", state.key, *hash_deletes))
        self.move_entries(id_text, old, new, add_all=False)
        expiry_changed = new_facts is not None and new_exp != state.exp
        for claim in new.claims:
            if self.holders.get(claim) != id_text:
                if new_exp is None:
                    out.append(("SET", claim, id_text))
                else:
                    out.append(("SET", claim, id_text, "PXAT", new_exp))
                self.holders[claim] = id_text
            elif expiry_changed:
                out.append(("PEXPIREAT", claim, new_exp) if new_exp is not None else ("PERSIST", claim))
        if new_facts is not None:
            if expiry_changed or (fresh and new_exp is not None):
                if new_exp is not None:
                    out.append(("PEXPIREAT", state.key, new_exp))
                    out.append(("ZADD", meta.keys.expiry(), new_exp, id_text))
                else:
                    if not fresh:
                        out.append(("PERSIST", state.key))
                    out.append(("ZREM", meta.keys.expiry(), id_text))
            line = state_line(meta, new_facts)
            if line != state.line:
                out.append(
                    ("HDEL", meta.keys.states(), id_text)
                    if not line
                    else ("HSET", meta.keys.states(), id_text, line)
                )
            state.line, state.exp, state.listed, state.exists, state.facts = (
                line,
                new_exp,
                True,
                True,
                new_facts,
            )
        else:
            if state.exp is not None:
                out.append(("ZREM", meta.keys.expiry(), id_text))
            if state.line:
                out.append(("HDEL", meta.keys.states(), id_text))
            state.line, state.exp, state.listed, state.exists = "", None, False, False
            state.facts, state.hash = {}, {}

    def clean(self, state: RecordState) -> None:
        if state.leftovers:
            self.transition(state, None, None, (), (), False)

    def locate(self, locator: Locator) -> RecordState | None:
        meta = locator.meta
        if locator.id_text is not None:
            return self.record(meta, locator.id_text)
        assert locator.claim is not None
        holder = self.holder(locator.claim)
        if holder is None:
            return None
        state = self.record(meta, holder)
        if state.exists and locator.claim not in self.claims_of(state):
            return None
        return state

    def expiry_of(self, state: RecordState, expiry: Expiry) -> int | None:
        if expiry == "keep":
            return state.exp
        return capped(state.meta, state.id_text, None if expiry == "persist" else self.now_ms() + expiry)

    def create(self, op: CreateOp) -> dict[str, str]:
        meta = op.meta
        if op.fresh and (meta.keys.base, op.id_text) not in self.records:
            self.records[(meta.keys.base, op.id_text)] = RecordState(
                meta, op.id_text, meta.keys.record(op.id_text), False, {}, "", {}, None, False, -2
            )
        state = self.record(meta, op.id_text)
        if state.exists:
            raise id_taken(meta)
        exp = capped(meta, op.id_text, None if op.ttl_ms is None else self.now_ms() + op.ttl_ms)
        self.transition(state, dict(op.facts), exp, op.writes, (), True)
        state.hash = {"id": op.id_text, **dict(op.writes)}
        return state.hash

    def update(self, op: UpdateOp) -> dict[str, str] | None:
        meta = op.meta
        state = self.locate(op.locator)
        if state is None or not state.exists:
            if state is not None:
                self.clean(state)
            return None if op.create is None else dict(self.create(op.create))
        hash_ = state.hash
        if op.expect is not None and hash_ != dict(op.expect):
            raise write_conflict(meta)
        facts = dict(state.facts)
        new_hash = dict(hash_)
        needs = layout(meta).needs
        for change in op.changes:
            name = change.name
            if change.kind == "i":
                current = new_hash.get(name)
                if current is None:
                    raise ValidationError(
                        f"{meta.name}.{name}: cannot increment a null value",
                        meta={"model": meta.name, "field": name},
                    )
                if not is_int_text(current):
                    raise ValidationError(
                        f"{meta.name}.{name}: the stored value is not an integer",
                        meta={"model": meta.name, "field": name},
                    )
                text = str(int(current) + int(change.value))
                new_hash[name] = text
                if name in needs:
                    facts[name] = field_fact(meta, name, text)
            else:
                if change.kind == "s":
                    new_hash[name] = change.value
                else:
                    new_hash.pop(name, None)
                if name in needs:
                    facts[name] = change.fact
        writes = [(name, text) for name, text in new_hash.items() if hash_.get(name) != text]
        deletes = [name for name in hash_ if name not in new_hash]
        self.transition(state, facts, self.expiry_of(state, op.expiry), writes, deletes, False)
        state.hash = new_hash
        return dict(new_hash)

    def live(self, locator: Locator) -> RecordState | None:
        """The live record a locator names, or None; what is left of a gone one is cleaned."""
        state = self.locate(locator)
        if state is not None and not state.exists:
            self.clean(state)
            return None
        return state

    def delete(self, op: DeleteOp) -> dict[str, str] | None:
        state = self.live(op.locator)
        if state is None:
            return None
        old = dict(state.hash)
        if op.expect is not None and old != dict(op.expect):
            raise write_conflict(op.meta)
        self.transition(state, None, None, (), (), False)
        return old

    def touch(self, op: TouchOp) -> dict[str, str] | None:
        state = self.live(op.locator)
        if state is None:
            return None
        self.transition(state, state.facts, self.expiry_of(state, op.expiry), (), (), False)
        return dict(state.hash)

    def sweep(self, op: SweepOp) -> list[int]:
        meta = op.meta
        due = self.due.get(meta.keys.base, [])[: op.limit]
        swept = 0
        for id_text in due:
            state = self.record(meta, id_text)
            if state.exists:
                if state.pttl == -1:
                    self.commands.append(("ZREM", meta.keys.expiry(), id_text))
                    state.exp = None
                elif state.pttl > 0:
                    state.exp = self.now_ms() + state.pttl
                    self.commands.append(("ZADD", meta.keys.expiry(), state.exp, id_text))
            elif state.leftovers:
                self.clean(state)
                swept += 1
        return [swept, len(due)]

    def clean_ids(self, op: CleanOp) -> int:
        cleaned = 0
        for id_text in op.ids:
            state = self.record(op.meta, id_text)
            if state.leftovers:
                self.clean(state)
                cleaned += 1
        return cleaned

    def rebuild(self, op: RebuildOp) -> list[str]:
        meta, id_text = op.meta, op.id_text
        state = self.record(meta, id_text)
        if not state.exists:
            self.clean(state)
            return ["gone"]
        if state.hash != op.stored:
            return ["changed"]
        facts = parse_state_line(op.line)
        old = entries(meta, id_text, state.facts)
        new = entries(meta, id_text, facts)
        out = self.commands
        self.move_entries(id_text, old, new, add_all=True)
        exp = None
        if state.pttl > 0:
            exp = self.now_ms() + state.pttl
            out.append(("ZADD", meta.keys.expiry(), exp, id_text))
        elif state.exp is not None:
            out.append(("ZREM", meta.keys.expiry(), id_text))
        answer = ["ok"]
        for claim, constraint in new.claims.items():
            holder = self.holder(claim)
            other = self.record(meta, holder) if holder is not None and holder != id_text else None
            if other is not None and other.exists and claim in self.claims_of(other):
                answer.append(constraint)
            else:
                out.append(("SET", claim, id_text) if exp is None else ("SET", claim, id_text, "PXAT", exp))
                self.holders[claim] = id_text
        line = state_line(meta, facts)
        out.append(
            ("HSET", meta.keys.states(), id_text, line) if line else ("HDEL", meta.keys.states(), id_text)
        )
        state.facts, state.line, state.exp = facts, line, exp
        return answer

    def prune(self, op: PruneOp) -> int:
        meta, kind = op.meta, op.member_kind
        removed = 0
        for member in op.members:
            if kind == "c":
                holder = self.holder(member)
                if holder is None:
                    continue
                state = self.record(meta, holder)
                if not state.exists or member not in self.claims_of(state):
                    if not state.exists:
                        self.clean(state)
                    if self.holder(member) is not None:
                        self.commands.append(("DEL", member))
                        self.holders[member] = None
                        removed += 1
                continue
            owner = member.split(LEX_SEPARATOR, 1)[-1] if kind == "l" else member
            state = self.record(meta, owner)
            if not state.exists:
                if state.leftovers:
                    self.clean(state)
                if kind in ("z", "l"):
                    self.commands.append(("ZREM", op.key, member))
                removed += 1
            elif kind in ("z", "l"):
                entry = index_entries(meta, owner, state.facts).get(op.key)
                if entry is None or entry[0] != member:
                    self.commands.append(("ZREM", op.key, member))
                    removed += 1
            elif kind == "e" and state.pttl < 0:
                self.commands.append(("ZREM", meta.keys.expiry(), owner))
                state.exp = None
                removed += 1
        return removed

    def apply(self, op: WriteOp) -> Any:
        """The answer the write script gives for ``op``: a hash, None, True or counts."""
        if isinstance(op, CreateOp):
            self.create(op)
            return True
        handler: Any = getattr(self, _HANDLERS[op.kind])
        return handler(op)


_HANDLERS = {
    "U": "update",
    "D": "delete",
    "T": "touch",
    "S": "sweep",
    "X": "clean_ids",
    "R": "rebuild",
    "P": "prune",
}
"""The method that applies each kind of operation, by the letter the write script reads."""


def unique_violation(meta: ModelMeta, constraint_name: str) -> UniqueConstraintError:
    constraint = next(c for c in meta.uniques if c.name == constraint_name)
    # named as the caller names the fields: by attribute, whatever name they are stored under
    fields = tuple(meta.fields[name].attr if name in meta.fields else name for name in constraint.fields)
    label = "+".join(fields)
    return UniqueConstraintError(
        f"{meta.name}: unique constraint {label!r} violated on {', '.join(fields)}",
        meta={"model": meta.name, "constraint": label, "fields": fields},
    )


def id_taken(meta: ModelMeta) -> UniqueConstraintError:
    return UniqueConstraintError(
        f"{meta.name}: a record with this id already exists",
        meta={"model": meta.name, "constraint": "id", "fields": ("id",)},
    )


def write_conflict(meta: ModelMeta) -> TransactionConflictError:
    return TransactionConflictError(
        f"{meta.name}: the record changed since it was read; read it again and retry",
        meta={"model": meta.name},
    )


def record_state(meta: ModelMeta, id_text: str, replies: Sequence[Any]) -> RecordState:
    """A record's state from the replies to ``record_reads``."""
    stored, line, exp, listed, pttl = replies
    return RecordState(
        meta=meta,
        id_text=id_text,
        key=meta.keys.record(id_text),
        exists=bool(stored),
        hash=dict(stored or {}),
        line=line or "",
        facts=parse_state_line(line),
        exp=None if exp is None else int(float(exp)),
        listed=listed is not None,
        pttl=int(pttl),
    )


def record_reads(meta: ModelMeta, id_text: str) -> list[Command]:
    key = meta.keys.record(id_text)
    keys = meta.keys
    return [
        ("HGETALL", key),
        ("HGET", keys.states(), id_text),
        ("ZSCORE", keys.expiry(), id_text),
        ("ZSCORE", keys.ids(), id_text),
        ("PTTL", key),
    ]
