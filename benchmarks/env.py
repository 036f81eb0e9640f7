"""Run settings (smoke, quick, full) and the environment every workload runs in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio as aioredis

from redis_orm_async import Orm, Repository

from .models import Post, Session, User
from .raw import RawStore
from .raw_watch import WatchStore

ORM, RAW, RAW_WATCH, RAW_BATCHED = "orm", "raw", "raw-watch", "raw-batched"
LINES = (ORM, RAW, RAW_WATCH, RAW_BATCHED)


@dataclass(frozen=True)
class Settings:
    """How much work each case does. ``ops`` maps a case key (``"W2-c64"``) to its operations."""

    mode: str
    repetitions: int
    users: int
    posts: int
    authors: int
    ops: Mapping[str, int]
    warmup: int
    live_sessions: int
    """W10: live sessions, read before and after the expired ones are added."""
    expired_sessions: int
    """W10: sessions that expire unswept (100,000 in the issue's target)."""
    concurrency: int = 64
    touch_tasks: int = 100
    batch: int = 100
    bulk_chunk: int = 500
    """Users per script in the raw-batched bulk create (W8): the ORM's own chunk."""
    create_many_chunk: int = 500
    page: int = 50
    posts_take: int = 1000
    authors_take: int = 100
    """W5-take3: authors read, each with its first 3 posts."""
    run_budget_s: float = 4.0
    """W9 and W10: a run stops taking new operations after this long (the old core's contended
    touches and backlogged reads are slow), and reports the operations it did."""
    workloads: tuple[str, ...] = ()
    """Only these workloads (``("W1", "W8")``); empty runs them all."""
    client_options: Mapping[str, Any] = field(default_factory=lambda: {"decode_responses": True})
    """Options of every line's ``redis.asyncio.Redis`` client, the same for each."""

    @classmethod
    def smoke(cls) -> Settings:
        """A handful of operations per case: checks that everything runs and agrees, in seconds."""
        ops = {"W1-seq": 12, "W1-c64": 70, "W2-seq": 12, "W2-c64": 70, "W3": 4, "W3-expr": 4, "W4": 4,
               "W4-expr": 4, "W5": 2, "W5-take3": 2, "W6": 12, "W7": 12, "W8": 1020, "W9": 100,
               "W10-fresh": 4, "W10-expired": 4, "W11": 70, "W12": 70}  # fmt: skip
        return cls(
            "smoke", 2, users=300, posts=150, authors=40, ops=ops, warmup=3,
            live_sessions=200, expired_sessions=1500, bulk_chunk=200, create_many_chunk=500,
        )  # fmt: skip

    @classmethod
    def quick(cls) -> Settings:
        ops = {"W1-seq": 1000, "W1-c64": 2000, "W2-seq": 2000, "W2-c64": 4000, "W3": 300,
               "W3-expr": 300, "W4": 300, "W4-expr": 300, "W5": 5, "W5-take3": 50, "W6": 1000,
               "W7": 1000, "W8": 10_000, "W9": 500, "W10-fresh": 300, "W10-expired": 300, "W11": 4000,
               "W12": 4000}  # fmt: skip
        return cls(
            "quick", 3, users=5000, posts=2000, authors=500, ops=ops, warmup=100,
            live_sessions=2000, expired_sessions=100_000,
        )  # fmt: skip

    @classmethod
    def full(cls) -> Settings:
        ops = {"W1-seq": 5000, "W1-c64": 10_000, "W2-seq": 10_000, "W2-c64": 20_000, "W3": 2000,
               "W3-expr": 2000, "W4": 2000, "W4-expr": 2000, "W5": 20, "W5-take3": 200, "W6": 5000,
               "W7": 5000, "W8": 10_000, "W9": 2000, "W10-fresh": 2000, "W10-expired": 2000,
               "W11": 20_000, "W12": 20_000}  # fmt: skip
        return cls(
            "full", 5, users=20_000, posts=5000, authors=2000, ops=ops, warmup=300,
            live_sessions=5000, expired_sessions=100_000, run_budget_s=10.0,
        )  # fmt: skip

    def only(self, workloads: tuple[str, ...]) -> Settings:
        return replace(self, workloads=workloads)


@dataclass
class Env:
    settings: Settings
    orm: Orm
    users: Repository[User]
    posts: Repository[Post]
    sessions: Repository[Session]
    raw: RawStore
    """The Lua line, and the raw-batched line's bulk and pipelined methods."""
    watch: WatchStore
    """The WATCH/MULTI/EXEC line, on the raw line's layout."""
    monitor: aioredis.Redis
    """A separate client for FLUSHDB, INFO and the audits, so no line's counters see them."""
    user_ids: list[str] = field(default_factory=list)
    """The seeded users, in creation order (the same ids in the ORM's and the raw layout)."""
    run_no: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    """What one case's setup leaves for a later one (W10's creation rates)."""

    def counters(self, line: str) -> Callable[[], tuple[int, int]]:
        """The line's own (commands sent, round trips) so far."""
        if line == ORM:
            return self.orm.backend.stats.snapshot
        redis = self.raw.redis
        return lambda: (redis.commands, redis.round_trips)
