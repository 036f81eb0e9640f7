"""A fixed-window rate limiter on the ORM: a counter record per window, expiring with it."""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

from redis_orm_async import Field, Model, Orm, UniqueConstraintError


class RateBucket(Model, key_prefix="rate"):
    id: str  # "<who>:<window number>": one bucket per caller and window
    hits: int = Field(0)


async def allow(orm: Orm, who: str, limit: int, window: timedelta) -> bool:
    """True for the first ``limit`` calls of ``who`` in the current window, False after."""
    seconds = window.total_seconds()
    bucket_id = f"{who}:{int(time.time() // seconds)}"
    buckets = orm.repo(RateBucket)
    with contextlib.suppress(UniqueConstraintError):  # another request may have opened it first
        await buckets.create(data={"id": bucket_id}, ttl=window)
    counted = await buckets.update(where={"id": bucket_id}, data={"hits": {"increment": 1}})
    return counted is not None and counted.hits <= limit
