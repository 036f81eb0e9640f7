"""The index audit: compare what a model's records imply with what its index keys hold.

It walks record keys with SCAN and the model's own id set, never KEYS. It reads a consistent
picture only while no writer is running; under concurrent writes a report can show an entry that
was in flight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from .._backends.protocol import Backend
from .._model.schema import ModelMeta
from .._model.state import LEX_SEPARATOR, IndexEntries, index_entries

ProblemKind = Literal["missing", "stale", "dangling", "wrong_score", "wrong_claim", "expiry"]
BATCH = 500


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One inconsistency: ``missing`` (an entry a record needs is absent), ``stale`` (an entry
    of a live record that no longer matches it), ``dangling`` (an entry of a record that does not
    exist), ``wrong_score``, ``wrong_claim`` or ``expiry``."""

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
class IndexSnapshot:
    """What Redis holds in a model's index keys."""

    sets: dict[str, set[str]] = field(default_factory=dict)
    zsets: dict[str, dict[str, float]] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)
    expiry: dict[str, float] = field(default_factory=dict)
    ttl_ids: set[str] = field(default_factory=set)


def compare(
    meta: ModelMeta, records: Mapping[str, Mapping[str, str]], actual: IndexSnapshot
) -> list[AuditProblem]:
    """Every difference between the entries ``records`` imply and the ``actual`` snapshot."""
    problems: list[AuditProblem] = []
    expected: dict[str, IndexEntries] = {
        id_text: index_entries(meta, id_text, stored) for id_text, stored in records.items()
    }
    want_sets: dict[str, set[str]] = {}
    want_zsets: dict[str, dict[str, float]] = {}
    want_claims: dict[str, str] = {}
    for id_text, entries in expected.items():
        for key in entries.sets:
            want_sets.setdefault(key, set()).add(id_text)
        for key, (member, score) in entries.zsets.items():
            want_zsets.setdefault(key, {})[member] = score
        for key in entries.claims:
            want_claims[key] = id_text

    lex_keys = {meta.keys.lex(f.name) for f in meta.fields.values() if f.lex}

    def extra(key: str, member: str) -> None:
        owner = member.split(LEX_SEPARATOR, 1)[1] if key in lex_keys else member
        live = owner in records
        problems.append(AuditProblem("stale" if live else "dangling", key, member))

    for key in set(want_sets) | set(actual.sets):
        have, want = actual.sets.get(key, set()), want_sets.get(key, set())
        problems.extend(AuditProblem("missing", key, m) for m in sorted(want - have))
        for member in sorted(have - want):
            extra(key, member)
    for key in set(want_zsets) | set(actual.zsets):
        have_z, want_z = actual.zsets.get(key, {}), want_zsets.get(key, {})
        for member, score in sorted(want_z.items()):
            if member not in have_z:
                problems.append(AuditProblem("missing", key, member))
            elif have_z[member] != score:
                detail = f"score {have_z[member]} != {score}"
                problems.append(AuditProblem("wrong_score", key, member, detail))
        for member in sorted(set(have_z) - set(want_z)):
            extra(key, member)
    for key in set(want_claims) | set(actual.claims):
        holder, owner = actual.claims.get(key), want_claims.get(key)
        if owner is None:
            assert holder is not None
            extra(key, holder)
        elif holder is None:
            problems.append(AuditProblem("missing", key, owner))
        elif holder != owner:
            problems.append(AuditProblem("wrong_claim", key, holder, f"should be {owner!r}"))
    for id_text in sorted(actual.ttl_ids - set(actual.expiry)):
        problems.append(AuditProblem("expiry", meta.keys.expiry(), id_text, "expiring, not indexed"))
    for id_text in sorted(set(actual.expiry) - actual.ttl_ids):
        kind: ProblemKind = "dangling" if id_text not in records else "expiry"
        problems.append(AuditProblem(kind, meta.keys.expiry(), id_text, "no expiry on record"))
    return problems


async def _scan(backend: Backend, pattern: str) -> AsyncIterator[str]:
    cursor = "0"
    while True:
        reply = await backend.execute(("SCAN", cursor, "MATCH", pattern, "COUNT", 1000))
        cursor, keys = str(reply[0]), reply[1]
        for key in keys:
            yield key
        if cursor == "0":
            return


async def _zset(backend: Backend, key: str) -> dict[str, float]:
    flat = await backend.execute(("ZRANGE", key, 0, -1, "WITHSCORES"))
    return {member: float(score) for member, score in zip(flat[::2], flat[1::2], strict=True)}


async def audit_model(backend: Backend, meta: ModelMeta) -> AuditReport:
    """Read a model's records and index keys and report every inconsistency."""
    keys = meta.keys
    record_ids = [keys.id_from_record_key(key) async for key in _scan(backend, keys.record_pattern())]
    actual = IndexSnapshot()
    actual.zsets[keys.ids()] = await _zset(backend, keys.ids())
    record_ids = sorted(set(record_ids) | set(actual.zsets[keys.ids()]))
    records: dict[str, dict[str, str]] = {}
    for start in range(0, len(record_ids), BATCH):
        batch = record_ids[start : start + BATCH]
        commands = []
        for id_text in batch:
            commands.append(("HGETALL", keys.record(id_text)))
            commands.append(("PTTL", keys.record(id_text)))
        replies = await backend.pipeline(commands)
        for position, id_text in enumerate(batch):
            stored, ttl = replies[2 * position], replies[2 * position + 1]
            if stored:
                records[id_text] = stored
                if int(ttl) > 0:
                    actual.ttl_ids.add(id_text)
    for field_meta in meta.fields.values():
        if field_meta.index == "equality":
            async for key in _scan(backend, keys.equality_pattern(field_meta.name)):
                actual.zsets[key] = await _zset(backend, key)
        elif field_meta.index == "range":
            actual.zsets[keys.range(field_meta.name)] = await _zset(backend, keys.range(field_meta.name))
        if field_meta.lex:
            actual.zsets[keys.lex(field_meta.name)] = await _zset(backend, keys.lex(field_meta.name))
    for constraint in meta.uniques:
        async for key in _scan(backend, keys.unique_pattern(constraint.name)):
            holder = await backend.execute(("GET", key))
            if holder is not None:
                actual.claims[key] = holder
    actual.expiry = await _zset(backend, keys.expiry())
    actual.sets = {key: members for key, members in actual.sets.items() if members}
    actual.zsets = {key: members for key, members in actual.zsets.items() if members}
    report = AuditReport(meta.name, records=len(records))
    report.problems = compare(meta, records, actual)
    return report
