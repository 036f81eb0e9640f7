"""Run settings (smoke, quick, full) and the environment every workload runs in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import redis.asyncio as aioredis

from redis_orm_async import Orm, Repository

from .models import Post, User
from .raw import RawStore

ORM, RAW, RAW_BATCHED = "orm", "raw", "raw-batched"
LINES = (ORM, RAW, RAW_BATCHED)


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
    concurrency: int = 64
    batch: int = 100
    create_many_chunk: int = 500
    page: int = 50
    posts_take: int = 1000
    workloads: tuple[str, ...] = ()
    """Only these workloads (``("W1", "W8")``); empty runs them all."""
    client_options: Mapping[str, Any] = field(default_factory=lambda: {"decode_responses": True})
    """Options of both lines' ``redis.asyncio.Redis`` clients, the same for each."""

    @classmethod
    def smoke(cls) -> Settings:
        """A handful of operations per case: checks that everything runs and agrees, in seconds."""
        ops = {"W1-seq": 12, "W1-c64": 70, "W2-seq": 12, "W2-c64": 70, "W3": 4, "W4": 4, "W5": 2,
               "W6": 12, "W7": 12, "W8": 620}  # fmt: skip
        return cls("smoke", 2, users=300, posts=150, authors=40, ops=ops, warmup=3)

    @classmethod
    def quick(cls) -> Settings:
        ops = {"W1-seq": 1000, "W1-c64": 2000, "W2-seq": 2000, "W2-c64": 4000, "W3": 300,
               "W4": 300, "W5": 5, "W6": 1000, "W7": 1000, "W8": 10_000}  # fmt: skip
        return cls("quick", 3, users=5000, posts=2000, authors=500, ops=ops, warmup=100)

    @classmethod
    def full(cls) -> Settings:
        ops = {"W1-seq": 5000, "W1-c64": 10_000, "W2-seq": 10_000, "W2-c64": 20_000, "W3": 2000,
               "W4": 2000, "W5": 20, "W6": 5000, "W7": 5000, "W8": 10_000}  # fmt: skip
        return cls("full", 5, users=20_000, posts=5000, authors=2000, ops=ops, warmup=300)

    def only(self, workloads: tuple[str, ...]) -> Settings:
        return replace(self, workloads=workloads)


@dataclass
class Env:
    settings: Settings
    orm: Orm
    users: Repository[User]
    posts: Repository[Post]
    raw: RawStore
    monitor: aioredis.Redis
    """A separate client for FLUSHDB and INFO, so neither line's counters see them."""
    user_ids: list[str] = field(default_factory=list)
    """The seeded users, in creation order."""
    run_no: int = 0

    def counters(self, line: str) -> Callable[[], tuple[int, int]]:
        """The line's own (commands sent, round trips) so far."""
        if line == ORM:
            return self.orm.backend.stats.snapshot
        redis = self.raw.redis
        return lambda: (redis.commands, redis.round_trips)
