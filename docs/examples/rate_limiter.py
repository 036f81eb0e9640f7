"""A fixed-window rate limiter on the ORM: a counter record per window, expiring with it."""

from __future__ import annotations

import time
from datetime import timedelta

from redis_orm_async import Field, Model, Orm


class RateBucket(Model, key_prefix="rate"):
    id: str  # "<who>:<window number>": one bucket per caller and window
    hits: int = Field(0)


async def allow(orm: Orm, who: str, limit: int, window: timedelta) -> bool:
    """True for the first ``limit`` calls of ``who`` in the current window, False after."""
    seconds = window.total_seconds()
    bucket_id = f"{who}:{int(time.time() // seconds)}"
    # one round trip: the first call creates the bucket with the window as its life, the next
    # ones add one to it and leave its expiry alone
    counted = await orm.repo(RateBucket).upsert(
        where={"id": bucket_id}, create={"hits": 1}, update={"hits": {"increment": 1}}, ttl=window
    )
    return counted.hits <= limit
