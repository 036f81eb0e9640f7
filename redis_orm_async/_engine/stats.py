"""What a model holds on the server: records, index keys, claims, expiry backlog, memory.

One SCAN of the model's own keys (``{prefix}:*``, never KEYS) sorts them by kind from the key
layout, with ``MEMORY USAGE`` of each key in the same pipelines where the server answers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .._backends.protocol import Backend
from .._errors import BackendError
from .._model.schema import ModelMeta
from .._scripts import load
from .audit import scan
from .built import RESUME_FIELD, index_names, read_marker
from .progress import QUIET, Progress

COUNT_SCRIPT = load("count")
BATCH = 500
INDEX_PARTS = ("i", "z", "l")


@dataclass
class ModelStats:
    """One model's footprint. ``memory`` is the sum of ``MEMORY USAGE`` over its keys in bytes
    (sampled by the server, so approximate), or None where the server does not answer it."""

    model: str
    prefix: str
    records: int = 0
    """Live records (expired ones not counted, even before the sweep)."""
    listed: int = 0
    """Ids in the id ZSET, expired ones awaiting the sweep included."""
    keys: int = 0
    index_keys: int = 0
    index_entries: int = 0
    claims: int = 0
    expiring: int = 0
    expiry_backlog: int = 0
    """Expired records whose index entries wait for a write, a read or ``sweep`` to remove them."""
    memory: int | None = None
    indexes: dict[str, bool] = field(default_factory=dict)
    """Each index and unique (``built.index_names``) and whether every record has entries in it."""
    reindex_under_way: bool = False


def _kind(meta: ModelMeta, key: str) -> str:
    """What a key of the model is, by the key layout: ``r`` record, ``i``/``z``/``l`` index,
    ``ids``, ``u`` claim, ``exp``, ``st``, ``ix``."""
    rest = key[len(meta.keys.base) + 1 :]
    part = rest.split(":", 1)[0]
    return part


async def model_stats(backend: Backend, meta: ModelMeta, progress: Progress = QUIET) -> ModelStats:
    keys = meta.keys
    stats = ModelStats(meta.name, keys.base)
    seconds, micros = await backend.execute(("TIME",))
    now = int(seconds) * 1000 + int(micros) // 1000
    listed, expiring, backlog = await backend.pipeline(
        [("ZCARD", keys.ids()), ("ZCARD", keys.expiry()), ("ZCOUNT", keys.expiry(), "-inf", f"({now}")]
    )
    stats.listed, stats.expiring, stats.expiry_backlog = int(listed), int(expiring), int(backlog)
    stats.records = int(await backend.eval(COUNT_SCRIPT, [keys.ids(), keys.expiry()], []))
    marker = await read_marker(backend, meta)
    stats.indexes = {name: name in marker for name in index_names(meta)}
    stats.reindex_under_way = RESUME_FIELD in marker
    memory: int | None = 0
    progress.start(f"inspect {meta.name}: keys", None)
    batch: list[str] = []

    async def measure(found: list[str]) -> None:
        nonlocal memory
        index_keys = [key for key in found if _kind(meta, key) in (*INDEX_PARTS, "ids")]
        if index_keys:
            sizes = await backend.pipeline([("ZCARD", key) for key in index_keys])
            stats.index_entries += sum(int(size) for size in sizes)
        if memory is not None:
            try:
                usage = await backend.pipeline([("MEMORY", "USAGE", key) for key in found])
            except BackendError:
                memory = None  # a service without MEMORY USAGE (or one that forbids it)
            else:
                memory += sum(int(size) for size in usage if size is not None)
        progress.advance(len(found))

    async for key in scan(backend, keys.all_pattern()):
        kind = _kind(meta, key)
        stats.keys += 1
        if kind in INDEX_PARTS or kind == "ids":
            stats.index_keys += 1
        elif kind == "u":
            stats.claims += 1
        batch.append(key)
        if len(batch) >= BATCH:
            await measure(batch)
            batch = []
    if batch:
        await measure(batch)
    progress.finish()
    stats.memory = memory
    return stats
