"""Rate limits on the ORM's own surface: one counter record per caller and window.

The design is a fixed window that opens at a caller's first call and is timed by the server:
each call is one ``upsert`` (one script call, one round trip) of the bucket ``<name>:<key>``. The
first call of a window creates the bucket with ``hits=1`` and a life of one window, whose expiry
the script computes from the server's own clock (``TIME``); later calls add one to ``hits`` and
leave that expiry alone. When the server expires the bucket, the window is over and the next call
opens a new one. So the window is never the app's idea of the time (app servers whose clocks
disagree still share one window), and because the count is incremented inside the script, 64
concurrent calls against a limit of N let exactly N through.

``reset_after`` (the ``X-RateLimit-Reset`` and ``Retry-After`` a client sees) is the only figure
taken from an app clock: the bucket records when the app that opened it saw the window open, and
the answer is that plus the window, minus now (at most one window, never below zero). The write
script does not hand back the server's time or the record's expiry, which would make it exact.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from ._backends.protocol import ScriptsRefused
from ._engine.ops import decode_reply
from ._engine.prepared import PreparedWrite
from ._errors import OrmError, QueryError, RateLimitedError
from ._model.model import Model
from ._repository import Repository

STAND_IN_ID = "rate-limit-stand-in-" + secrets.token_hex(8)
STAND_IN_MS = 10**17 + secrets.randbelow(10**17)
"""Texts no real call has, for planning a hit once (``_engine/prepared.py``)."""

MAX_KEY = 200
"""Keys longer than this are hashed: a bucket id stays short whatever the key function returns."""

UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


class RateLimitBucket(Model, key_prefix="ratelimit"):
    """One caller's count in one window; it expires (on the server's clock) when the window ends."""

    id: str
    hits: int = 0
    opened_ms: int = 0
    """When the app that opened the window saw it open (ms since the epoch), for ``reset_after``."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` calls per ``window``."""

    limit: int
    window: timedelta

    @classmethod
    def parse(cls, text: str | Rate) -> Rate:
        """``"20/minute"``, ``"5 per second"``, ``"100/15minutes"``, ``"1000/day"``."""
        if isinstance(text, Rate):
            return text
        match = RATE.match(text) if isinstance(text, str) else None
        if match is None:
            raise QueryError(
                f"a rate is written like '20/minute', '5/second', '100/15minutes' or '1000/day', not {text!r}"
            )
        count, every, unit = int(match[1]), int(match[2] or 1), match[3].lower()
        return cls.of(count, timedelta(seconds=every * UNITS[unit]))

    @classmethod
    def of(cls, limit: int, window: timedelta) -> Rate:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise QueryError(f"a rate limit allows at least 1 call per window, not {limit!r}")
        if not isinstance(window, timedelta) or window < timedelta(milliseconds=1):
            raise QueryError(f"a rate limit's window is a timedelta of at least 1 ms, not {window!r}")
        return cls(limit, window)

    def __str__(self) -> str:
        return f"{self.limit}/{self.window.total_seconds():g}s"


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    """The outcome of one call: whether it is allowed, and what the response headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the window ends (estimated from the app's clock; see the module docstring)."""
    hits: int
    """Calls counted in this window, this one included (denied calls count too)."""

    def error(self) -> RateLimitedError:
        return RateLimitedError(
            f"rate limit of {self.limit} calls per window reached; retry in {math.ceil(self.reset_after)} s",
            meta={"limit": self.limit, "remaining": self.remaining, "reset_after": self.reset_after},
        )

    def check(self) -> RateLimitStatus:
        """This status, or ``RateLimitedError`` if the call is not allowed."""
        if not self.allowed:
            raise self.error()
        return self


class RateLimiter:
    """``limit`` calls per window for each key (a client address, a user id, an API key)."""

    def __init__(
        self,
        buckets: Repository[RateLimitBucket],
        rate: str | Rate,
        *,
        name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` (seconds since the epoch) only feeds the ``reset_after`` estimate; the
        window itself is timed by the server."""
        if not isinstance(name, str) or not name:
            raise QueryError("a rate limiter needs a non-empty name (its buckets are '<name>:<key>')")
        self._buckets = buckets
        self.rate = Rate.parse(rate)
        self.name = name
        self._clock = clock
        self._ttl = self.rate.window
        self._prepared: PreparedWrite | bool | None = False
        """The hit's upsert planned once (None: it cannot be; False: not tried yet)."""

    def bucket_id(self, key: str) -> str:
        if not isinstance(key, str):
            raise QueryError(f"a rate limit key is a str, not {type(key).__name__}")
        if len(key) > MAX_KEY:
            key = "#" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.name}:{key}"

    async def hit(self, key: str) -> RateLimitStatus:
        """Count one call of ``key`` and say whether it is within the limit; one round trip."""
        now_ms = int(self._clock() * 1000)
        bucket = await self._count(self.bucket_id(key), now_ms)
        window_ms = self._ttl // timedelta(milliseconds=1)
        left_ms = window_ms if bucket.hits <= 1 else bucket.opened_ms + window_ms - now_ms
        limit = self.rate.limit
        return RateLimitStatus(
            allowed=bucket.hits <= limit,
            limit=limit,
            remaining=max(0, limit - bucket.hits),
            reset_after=min(max(left_ms, 0), window_ms) / 1000,
            hits=bucket.hits,
        )

    def _upsert(self, bucket_id: str, now_ms: int) -> tuple[dict[str, str], dict[str, int], dict[str, Any]]:
        return {"id": bucket_id}, {"hits": 1, "opened_ms": now_ms}, {"hits": {"increment": 1}}

    async def _count(self, bucket_id: str, now_ms: int) -> RateLimitBucket:
        """The bucket with this call counted: the upsert prepared once and run with this call's
        id and clock (the same words, without planning them again), or the plain upsert."""
        if self._prepared is False:
            where, create, update = self._upsert(STAND_IN_ID, STAND_IN_MS)
            self._prepared = self._buckets._prepared_upsert(
                where, create, update, ttl=self._ttl, stand_ins=(STAND_IN_ID, str(STAND_IN_MS))
            )
        prepared = self._prepared
        if isinstance(prepared, PreparedWrite) and prepared.usable:
            meta = self._buckets.meta
            try:
                reply = await prepared.run((meta.id_text(bucket_id), str(now_ms)))
            except ScriptsRefused:
                pass  # the server refuses scripts after all: the upsert below takes the plain path
            except OrmError as exc:
                exc.backend_kind = exc.backend_kind or prepared.engine.backend.features.kind
                raise
            else:
                return cast(RateLimitBucket, decode_reply(meta, reply))
        where, create, update = self._upsert(bucket_id, now_ms)
        return await self._buckets.upsert(where=where, create=create, update=update, ttl=self._ttl)

    async def reset(self, key: str) -> None:
        """Forget ``key``'s current window (after a successful login, say)."""
        await self._buckets.delete(where={"id": self.bucket_id(key)})
