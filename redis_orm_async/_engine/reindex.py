"""Reindex: give every record entries in the indexes and unique claims it does not have yet, and
the default of every field added to the model since it was written.

This is what an index or a unique declared on a model that already has records needs: records
written before the declaration have no entries in it. Reindex walks the model's id ZSET in id
order, in batches, and rebuilds each record with repair's own operation (``RebuildOp``: one atomic
script call per batch that rebuilds a record only if its hash is still the one just read), so it is
safe while writes go on. After each batch it saves where it got to in the model's marker
(``built.py``), so an interrupted reindex resumes there; once it has walked every record it marks
the indexes built.

A record written before a field existed has no value for it in its hash and reads as the field's
default; reindex writes that default into it (one atomic update per batch, only where the record
is still as read), so that queries and indexes, which go by stored values, agree with reads.

A new unique constraint is checked first: if existing records already share a value, nothing is
written and the conflicting ids are reported, because only a person can decide which record keeps
the value. A duplicate created by a concurrent writer while the walk runs (an old record's value
has no claim yet, so a new record can take it) is reported at the end, and that constraint is
not marked built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .._backends.protocol import Backend, Command
from .._errors import TransactionConflictError
from .._model.schema import ModelMeta, UniqueConstraint
from .._model.state import claim_keys, record_facts
from .._query.locate import Locator
from .audit import read_records
from .built import RESUME_FIELD, describe, index_names, mark_built, read_marker
from .ops import RebuildOp, UpdateOp, set_change
from .progress import QUIET, Progress
from .writes import WriteEngine

BATCH = 500


@dataclass(frozen=True, slots=True)
class UniqueConflict:
    """Records that hold the same value of one unique constraint."""

    constraint: str
    ids: tuple[str, ...]


@dataclass
class ReindexReport:
    """What ``reindex`` built, or why it refused to.

    ``indexes`` are the marker names (``built.index_names``) it set out to build; ``refused`` is
    True when existing records violate a new unique constraint (nothing was written); ``resumed``
    is the id an interrupted earlier run had reached."""

    model: str
    indexes: list[str] = field(default_factory=list)
    records: int = 0
    conflicts: list[UniqueConflict] = field(default_factory=list)
    refused: bool = False
    resumed: str | None = None

    @property
    def ok(self) -> bool:
        return not self.conflicts

    def __str__(self) -> str:
        if self.refused:
            head = f"reindex of {self.model} refused: existing records share unique values"
        elif not self.indexes:
            head = f"reindex of {self.model}: every index is built"
        else:
            built = ", ".join(describe(name) for name in self.indexes)
            head = f"reindex of {self.model}: {self.records} records, built {built}"
        lines = [head]
        lines.extend(f"  {c.constraint}: {', '.join(c.ids)}" for c in self.conflicts)
        return "\n".join(lines)


def next_ids_command(meta: ModelMeta, after: str | None, count: int) -> Command:
    """The next ``count`` ids after ``after`` in the id ZSET's order (int ids by score, string
    ids, all at score 0, by text)."""
    if meta.id_kind == "manual_int":
        low = "-inf" if after is None else f"({after}"
        return ("ZRANGE", meta.keys.ids(), low, "+inf", "BYSCORE", "LIMIT", 0, count)
    low = "-" if after is None else f"({after}"
    return ("ZRANGE", meta.keys.ids(), low, "+", "BYLEX", "LIMIT", 0, count)


async def walk_ids(backend: Backend, meta: ModelMeta, after: str | None, batch: int) -> list[str]:
    reply = await backend.execute(next_ids_command(meta, after, batch))
    return [str(item) for item in reply]


async def _done_before(backend: Backend, meta: ModelMeta, after: str | None) -> int:
    if after is None:
        return 0
    if meta.id_kind == "manual_int":
        return int(await backend.execute(("ZCOUNT", meta.keys.ids(), "-inf", after)))
    return int(await backend.execute(("ZLEXCOUNT", meta.keys.ids(), "-", f"[{after}")))


def _claims(meta: ModelMeta, id_text: str, stored: Mapping[str, str]) -> dict[str, str]:
    """Claim key -> constraint name of the claims a stored record implies."""
    return claim_keys(meta, id_text, record_facts(meta, stored))


async def find_duplicates(
    backend: Backend,
    meta: ModelMeta,
    constraints: Sequence[UniqueConstraint],
    *,
    batch: int = BATCH,
    progress: Progress = QUIET,
) -> list[UniqueConflict]:
    """Groups of records that share a value of one of ``constraints``, from the records
    themselves (their claims may not exist yet)."""
    wanted = {constraint.name for constraint in constraints}
    holders: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    progress.start(
        f"reindex {meta.name}: checking unique values", await backend.execute(("ZCARD", meta.keys.ids()))
    )
    after: str | None = None
    while ids := await walk_ids(backend, meta, after, batch):
        for id_text, record in (await read_records(backend, meta, ids)).items():
            for claim, constraint in _claims(meta, id_text, record.hash).items():
                if constraint in wanted:
                    holders.setdefault(claim, []).append(id_text)
                    names[claim] = constraint
        progress.advance(len(ids))
        after = ids[-1]
    return sorted(
        (UniqueConflict(names[claim], tuple(sorted(ids))) for claim, ids in holders.items() if len(ids) > 1),
        key=lambda conflict: (conflict.constraint, conflict.ids),
    )


def defaults_text(meta: ModelMeta) -> dict[str, str]:
    """Stored name -> stored text of the default of each field that cannot be null and has a
    fixed default: a record without it in its hash was written before the field existed (the ORM
    writes every value that is not null), and it reads as that default."""
    found: dict[str, str] = {}
    for name, stored in meta.fields.items():
        info = meta.model.model_fields[stored.attr]
        if stored.nullable or info.default_factory is not None or info.is_required():
            continue
        found[name] = stored.text(info.default)
    return found


async def fill_defaults(engine: WriteEngine, meta: ModelMeta, ids: list[str]) -> int:
    """Write the default of each field that these records were written without, so that queries
    (which read stored values, and indexes, which hold them) agree with reads (which give the
    default). Each record is changed only if it is still as it was read; one that changed is read
    again. Returns how many records were filled."""
    defaults = defaults_text(meta)
    if not defaults:
        return 0
    for _ in range(engine.max_attempts):
        rows = await read_records(engine.backend, meta, ids)
        ops = []
        for id_text, record in rows.items():
            missing = [name for name in defaults if name not in record.hash]
            if missing:
                changes = [set_change(meta, name, defaults[name]) for name in missing]
                ops.append(UpdateOp(meta, Locator(meta, id_text=id_text), changes, expect=record.hash))
        try:
            await engine.run(ops)
        except TransactionConflictError:
            continue  # one of them changed since it was read: read the batch again
        return len(ops)
    raise TransactionConflictError(f"{meta.name}: records kept changing while their defaults were written")


async def _rebuild(engine: WriteEngine, meta: ModelMeta, ids: list[str]) -> tuple[int, list[UniqueConflict]]:
    """Rebuild these records (reading again any that changed meanwhile): how many were rebuilt,
    and the unique values that another live record already claims."""
    backend = engine.backend
    rebuilt = 0
    conflicts: list[UniqueConflict] = []
    pending = ids
    await fill_defaults(engine, meta, ids)
    for _ in range(engine.max_attempts):
        rows = await read_records(backend, meta, pending)
        ops = [RebuildOp(meta, id_text, rows[id_text].hash) for id_text in pending if id_text in rows]
        await engine.run(ops)
        for op in ops:
            if not isinstance(op.result, list):
                continue
            rebuilt += 1
            if op.result:
                claims = _claims(meta, op.id_text, rows[op.id_text].hash)
                for claim, constraint in claims.items():
                    if constraint in op.result:
                        holder = await backend.execute(("GET", claim))
                        conflicts.append(UniqueConflict(constraint, tuple(sorted({str(holder), op.id_text}))))
        pending = [op.id_text for op in ops if op.result == "changed"]
        if not pending:
            break
    return rebuilt, conflicts


async def reindex_model(
    engine: WriteEngine,
    meta: ModelMeta,
    *,
    batch: int = BATCH,
    rebuild_all: bool = False,
    progress: Progress = QUIET,
) -> ReindexReport:
    """Backfill the model's indexes that are not built yet (every one with ``rebuild_all``)."""
    backend = engine.backend
    marker = await read_marker(backend, meta)
    wanted = [*index_names(meta), *(f"d:{name}" for name in defaults_text(meta))]
    todo = [name for name in wanted if rebuild_all or name not in marker]
    report = ReindexReport(meta.name, indexes=todo)
    if not todo:
        return report
    new_uniques = [c for c in meta.uniques if f"u:{c.name}" in todo]
    if new_uniques:
        report.conflicts = await find_duplicates(backend, meta, new_uniques, batch=batch, progress=progress)
        if report.conflicts:
            report.refused = True
            progress.finish()
            return report
    signature = ",".join(todo)
    saved_signature, _, saved_after = marker.get(RESUME_FIELD, "").partition("\n")
    after = saved_after if saved_signature == signature and saved_after else None
    report.resumed = after
    total = int(await backend.execute(("ZCARD", meta.keys.ids())))
    progress.start(f"reindex {meta.name}: records", total)
    progress.advance(await _done_before(backend, meta, after))
    while ids := await walk_ids(backend, meta, after, batch):
        rebuilt, conflicts = await _rebuild(engine, meta, ids)
        report.records += rebuilt
        report.conflicts.extend(conflicts)
        after = ids[-1]
        await backend.execute(("HSET", meta.keys.built(), RESUME_FIELD, f"{signature}\n{after}"))
        progress.advance(len(ids))
    progress.finish()
    failed = {f"u:{conflict.constraint}" for conflict in report.conflicts}
    await mark_built(backend, meta, [name for name in todo if name not in failed])
    await backend.execute(("HDEL", meta.keys.built(), RESUME_FIELD))
    return report
