"""A rate limiter on the ORM: one counter record per caller, alive for one window.

``orm.rate_limiter("20/minute", name=...)`` (and ``redis_orm_async.fastapi.RateLimit``) is this
same design, built in, with the numbers for the ``X-RateLimit-*`` headers.
"""

from __future__ import annotations

from datetime import timedelta

from redis_orm_async import Field, Model, Orm


class RateBucket(Model, key_prefix="rate"):
    id: str  # the caller: its bucket lives for one window, then the next call opens a new one
    hits: int = Field(0)


async def allow(orm: Orm, who: str, limit: int, window: timedelta) -> bool:
    """True for the first ``limit`` calls of ``who`` in its current window, False after.

    The window opens at the caller's first call and ends when the server expires the bucket: it
    is timed by the server's clock, so app servers whose clocks disagree still share it.
    """
    # one round trip: the first call creates the bucket with the window as its life, the next
    # ones add one to it and leave its expiry alone
    counted = await orm.repo(RateBucket).upsert(
        where={"id": who}, create={"hits": 1}, update={"hits": {"increment": 1}}, ttl=window
    )
    return counted.hits <= limit
