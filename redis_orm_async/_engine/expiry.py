"""Expiry with clean indexes.

Redis drops an expired record's HASH and its unique claims by itself: both carry the same
``PXAT``, so a token value is free again the moment its record expires, and a claim that still
points at a vanished record is stale and taken over by the next writer. What Redis cannot drop are
the record's entries in the shared index keys. Those are removed from the record's state line,
which outlives the record: by every write of the model (a few due records each, see
``SWEEP_PER_WRITE``), by ``sweep``, and by reads that met an expired id (``clean_ids``). Reads and
``count`` are exact before any of that runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._backends.protocol import Backend
from .._errors import BackendError
from .._model.schema import ModelMeta
from .ops import CleanOp, SweepOp
from .writes import WriteEngine


async def sweep_due(engine: WriteEngine, meta: ModelMeta, limit: int) -> tuple[int, int]:
    """Remove the leftovers of up to ``limit`` due records: (swept, examined)."""
    op = SweepOp(meta, limit)
    await engine.run([op])
    swept, examined = op.result
    return swept, examined


async def clean_ids(backend: Backend, meta: ModelMeta, ids: Sequence[str]) -> int:
    """Lazy cleanup after a read: drop the leftovers of these ids if their records are gone.

    Best effort: on a read-only replica, at ``maxmemory`` or while the server is away, the read's
    answer stands and the entries wait for the next write or sweep.
    """
    if not ids:
        return 0
    op = CleanOp(meta, ids)
    try:
        await WriteEngine(backend, sweep_per_write=0).run([op])
    except BackendError:
        return 0
    cleaned: int = op.result
    return cleaned
