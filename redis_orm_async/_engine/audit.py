"""Audit and repair: compare what a model's records imply with what its index keys hold, and
rebuild the difference.

Both walk record keys with SCAN and the model's own keys, never KEYS. The audit reads a consistent
picture only while no writer runs; under concurrent writes it can report an entry in flight.
Repair is safe while writers run: each record is rebuilt in one atomic step only if its hash is
still the one repair read (else it is read again), and each index entry is removed only if, at
that moment, no record's state implies it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .._backends.protocol import Backend
from .._model.schema import ModelMeta
from .._model.state import LEX_SEPARATOR, Fact, entries, parse_state_line, record_facts
from .ops import PruneKind, PruneOp, RebuildOp
from .writes import WriteEngine

ProblemKind = Literal["missing", "stale", "dangling", "wrong_score", "wrong_claim", "expiry", "state"]
BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One inconsistency: ``missing`` (an entry a record needs is absent), ``stale`` (an entry
    of a live record that no longer matches it), ``dangling`` (an entry of a record that does not
    exist), ``wrong_score``, ``wrong_claim``, ``expiry`` (a record's expiry and its expiry entry or
    claims disagree) or ``state`` (the state line the next write starts from is wrong)."""

    kind: ProblemKind
    key: str
    member: str
    detail: str = ""


@dataclass
class AuditReport:
    model: str
    records: int = 0
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"audit of {self.model}: {self.records} records, {len(self.problems)} problems"]
        lines.extend(f"  {p.kind}: {p.key} {p.member!r} {p.detail}" for p in self.problems[:50])
        return "\n".join(lines)


@dataclass
class RepairReport:
    """What ``repair`` did: records rebuilt, index entries and claims removed, and the unique
    values two live records both hold (``(constraint, id)``: only a person can settle those)."""

    model: str
    records: int = 0
    removed: int = 0
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"repair of {self.model}: {self.records} records rebuilt, {self.removed} entries removed, "
            f"{len(self.conflicts)} duplicate unique values"
        )


@dataclass
class IndexSnapshot:
    """What Redis holds for a model besides its records."""

    zsets: dict[str, dict[str, float]] = field(default_factory=dict)
    claims: dict[str, tuple[str, int]] = field(default_factory=dict)
    """claim key -> (holder, PTTL)"""
    expiry: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    hash: Mapping[str, str]
    pttl: int


def _same_fact(a: Fact | None, b: Fact | None) -> bool:
    if a is None or b is None:
        return a is b
    scores_equal = a.score == b.score or (
        a.score != "" and b.score != "" and float(a.score) == float(b.score)
    )
    return a.token == b.token and a.lex == b.lex and scores_equal


def compare(
    meta: ModelMeta, records: Mapping[str, StoredRecord], actual: IndexSnapshot
) -> list[AuditProblem]:
    """Every difference between what ``records`` imply and what ``actual`` holds."""
    problems: list[AuditProblem] = []
    want_zsets: dict[str, dict[str, float]] = {}
    want_claims: dict[str, str] = {}
    states_key, expiry_key = meta.keys.states(), meta.keys.expiry()
    for id_text, record in records.items():
        facts = record_facts(meta, record.hash)
        found = entries(meta, id_text, facts)
        for key, (member, score_text) in found.zsets.items():
            want_zsets.setdefault(key, {})[member] = float(score_text)
        for key in found.claims:
            want_claims[key] = id_text
            held = actual.claims.get(key)
            if held is not None and held[0] == id_text and (held[1] > 0) != (record.pttl > 0):
                problems.append(AuditProblem("expiry", key, id_text, "claim and record disagree on expiry"))
        stored = parse_state_line(actual.states.get(id_text))
        if any(not _same_fact(stored.get(name), fact) for name, fact in facts.items()) or set(stored) - set(
            facts
        ):
            problems.append(
                AuditProblem("state", states_key, id_text, "state line does not match the record")
            )
        if record.pttl > 0 and id_text not in actual.expiry:
            problems.append(AuditProblem("expiry", expiry_key, id_text, "expiring, not indexed"))
        if record.pttl < 0 and id_text in actual.expiry:
            problems.append(AuditProblem("expiry", expiry_key, id_text, "no expiry on record"))

    lex_keys = {meta.keys.lex(f.name) for f in meta.fields.values() if f.lex}

    def extra(key: str, member: str) -> None:
        owner = member.split(LEX_SEPARATOR, 1)[-1] if key in lex_keys else member
        problems.append(AuditProblem("stale" if owner in records else "dangling", key, member))

    for key in sorted(set(want_zsets) | set(actual.zsets)):
        have, want = actual.zsets.get(key, {}), want_zsets.get(key, {})
        for member, score in sorted(want.items()):
            if member not in have:
                problems.append(AuditProblem("missing", key, member))
            elif have[member] != score:
                problems.append(AuditProblem("wrong_score", key, member, f"score {have[member]} != {score}"))
        for member in sorted(set(have) - set(want)):
            extra(key, member)
    for key in sorted(set(want_claims) | set(actual.claims)):
        held, owner = actual.claims.get(key), want_claims.get(key)
        if owner is None:
            assert held is not None
            extra(key, held[0])
        elif held is None:
            problems.append(AuditProblem("missing", key, owner))
        elif held[0] != owner:
            problems.append(AuditProblem("wrong_claim", key, held[0], f"should be {owner!r}"))
    for id_text in sorted(set(actual.expiry) - set(records)):
        problems.append(AuditProblem("dangling", expiry_key, id_text, "record is gone"))
    for id_text in sorted(set(actual.states) - set(records)):
        problems.append(AuditProblem("dangling", states_key, id_text, "record is gone"))
    return problems


async def scan(backend: Backend, pattern: str) -> AsyncIterator[str]:
    """Every key matching ``pattern``, by SCAN."""
    cursor = "0"
    while True:
        reply = await backend.execute(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
        cursor, keys = str(reply[0]), reply[1]
        for key in keys:
            yield key
        if cursor == "0":
            return


async def _members(backend: Backend, key: str, command: str) -> AsyncIterator[list[str]]:
    """A ZSET's or HASH's members in batches, by ZSCAN or HSCAN (pairs: member, score or value)."""
    cursor = "0"
    while True:
        reply = await backend.execute((command, key, cursor, "COUNT", BATCH))
        cursor, flat = str(reply[0]), list(reply[1])
        if flat:
            yield flat
        if cursor == "0":
            return


async def _pairs(backend: Backend, key: str, command: str) -> dict[str, str]:
    found: dict[str, str] = {}
    async for flat in _members(backend, key, command):
        found.update(zip(flat[::2], flat[1::2], strict=True))
    return found


def _index_keys(meta: ModelMeta) -> list[str]:
    keys = meta.keys
    found = [keys.ids()]
    found.extend(keys.range(f.name) for f in meta.fields.values() if f.index == "range")
    found.extend(keys.lex(f.name) for f in meta.fields.values() if f.lex)
    return found


async def _all_index_keys(backend: Backend, meta: ModelMeta) -> list[str]:
    found = _index_keys(meta)
    for field_meta in meta.fields.values():
        if field_meta.index == "equality":
            found.extend([key async for key in scan(backend, meta.keys.equality_pattern(field_meta.name))])
    return found


async def _record_ids(backend: Backend, meta: ModelMeta) -> list[str]:
    keys = meta.keys
    ids = {keys.id_from_record_key(key) async for key in scan(backend, keys.record_pattern())}
    ids.update(await _pairs(backend, keys.ids(), "ZSCAN"))
    return sorted(ids)


async def _read_records(backend: Backend, meta: ModelMeta, ids: list[str]) -> dict[str, StoredRecord]:
    records: dict[str, StoredRecord] = {}
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        commands = []
        for id_text in batch:
            commands.append(("HGETALL", meta.keys.record(id_text)))
            commands.append(("PTTL", meta.keys.record(id_text)))
        replies = await backend.pipeline(commands)
        for position, id_text in enumerate(batch):
            stored, pttl = replies[2 * position], replies[2 * position + 1]
            if stored:
                records[id_text] = StoredRecord(stored, int(pttl))
    return records


async def audit_model(backend: Backend, meta: ModelMeta) -> AuditReport:
    """Read a model's records and index keys and report every inconsistency."""
    keys = meta.keys
    records = await _read_records(backend, meta, await _record_ids(backend, meta))
    actual = IndexSnapshot()
    for key in await _all_index_keys(backend, meta):
        members = {member: float(score) for member, score in (await _pairs(backend, key, "ZSCAN")).items()}
        if members:
            actual.zsets[key] = members
    for constraint in meta.uniques:
        claim_keys = [key async for key in scan(backend, keys.unique_pattern(constraint.name))]
        for start in range(0, len(claim_keys), BATCH):
            batch = claim_keys[start : start + BATCH]
            replies = await backend.pipeline([c for key in batch for c in (("GET", key), ("PTTL", key))])
            for position, key in enumerate(batch):
                holder = replies[2 * position]
                if holder is not None:
                    actual.claims[key] = (holder, int(replies[2 * position + 1]))
    actual.expiry = {
        member: float(score) for member, score in (await _pairs(backend, keys.expiry(), "ZSCAN")).items()
    }
    actual.states = await _pairs(backend, keys.states(), "HSCAN")
    report = AuditReport(meta.name, records=len(records))
    report.problems = compare(meta, records, actual)
    return report


async def repair_model(engine: WriteEngine, meta: ModelMeta, *, batch: int = BATCH) -> RepairReport:
    """Rebuild every record's entries from its hash, then remove what no record implies.

    A record that changed while it was read is read again; one whose unique value another record
    holds is tried again once the others are rebuilt (its rival's state may have been the wrong
    one); what still collides then is a real duplicate, reported and left alone.
    """
    backend = engine.backend
    report = RepairReport(meta.name)
    rebuilt: set[str] = set()
    pending = await _record_ids(backend, meta)
    rivals: dict[str, list[str]] = {}
    for _ in range(engine.max_attempts):
        changed: list[str] = []
        colliding: dict[str, list[str]] = {}
        for start in range(0, len(pending), batch):
            chunk = pending[start : start + batch]
            rows = await _read_records(backend, meta, chunk)
            ops = [RebuildOp(meta, id_text, rows[id_text].hash) for id_text in chunk if id_text in rows]
            await engine.run(ops)
            for op in ops:
                if op.result == "changed":
                    changed.append(op.id_text)
                elif isinstance(op.result, list):
                    rebuilt.add(op.id_text)
                    if op.result:
                        colliding[op.id_text] = op.result
        settled = colliding.keys() == rivals.keys()
        rivals = colliding
        if not changed and (not colliding or settled):
            break
        pending = [*changed, *colliding]
    report.records = len(rebuilt)
    report.conflicts = sorted((name, id_text) for id_text, names in rivals.items() for name in names)
    report.removed = await _prune(engine, meta, batch)
    return report


async def _prune(engine: WriteEngine, meta: ModelMeta, batch: int) -> int:
    backend, keys = engine.backend, meta.keys
    lex_keys = {keys.lex(f.name) for f in meta.fields.values() if f.lex}
    removed = 0

    async def run(key: str, kind: PruneKind, members: list[str]) -> None:
        nonlocal removed
        for start in range(0, len(members), batch):
            op = PruneOp(meta, key, kind, members[start : start + batch])
            await engine.run([op])
            removed += op.result

    for key in await _all_index_keys(backend, meta):
        await run(key, "l" if key in lex_keys else "z", list(await _pairs(backend, key, "ZSCAN")))
    for constraint in meta.uniques:
        await run("", "c", [key async for key in scan(backend, keys.unique_pattern(constraint.name))])
    await run(keys.states(), "s", list(await _pairs(backend, keys.states(), "HSCAN")))
    await run(keys.expiry(), "e", list(await _pairs(backend, keys.expiry(), "ZSCAN")))
    return removed
