"""The work a web app does on every request: W11 (a rate-limit check) and W12 (authenticating a
sliding session by its token). Each is one round trip in both lines, from 64 tasks at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio

from redis_orm_async import RateLimitBucket, RateLimiter, RateLimitStatus

from .cases import Case, audit, check, tag
from .env import ORM, RAW, Env, Settings
from .expiry import TTL_MS, raw_session_audit
from .measure import Outcome, Timed, per_op
from .models import SESSION_TTL, RawRateStatus, Session, comparable, sessions_data
from .raw import rate_key
from .targets import Target

WINDOW = timedelta(minutes=1)
WINDOW_MS = WINDOW // timedelta(milliseconds=1)
LIMIT = 50
CLIENTS = 500
"""Callers per run: each is counted a few times, and its first call opens its window."""
STEP = 7919
"""A prime: consecutive operations touch scattered sessions."""


def limiter(env: Env) -> RateLimiter:
    return env.orm.rate_limiter(f"{LIMIT}/minute", name="bench")


class RateLimitCheck(Case):
    """W11: ``RateLimiter.hit`` (one upsert of a counter created with a window's life) against
    one ``INCR``/``PEXPIRE`` script, for 500 callers, from 64 tasks."""

    key = workload = "W11"
    lines = (ORM, RAW)
    target = Target(0.7, round_trips=1)
    ignore = ()

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.concurrency = settings.concurrency
        self.title = f"rate-limit check, {CLIENTS} callers, {settings.concurrency} tasks"

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        prefix = tag(env, line, "rl")
        keys = [f"{prefix}c{i % CLIENTS}" for i in range(count)]
        if line == ORM:
            orm_limiter = limiter(env)
            return per_op(count, self.concurrency, lambda i: orm_limiter.hit(keys[i]))
        return per_op(
            count, self.concurrency, lambda i: env.raw.rate_limit("bench", keys[i], LIMIT, WINDOW_MS)
        )

    def digest(self, first: Any) -> Any:
        """Both lines' answers to a caller's first call (the reset times differ by microseconds)."""
        if isinstance(first, RateLimitStatus | RawRateStatus):
            return (first.allowed, first.limit, first.remaining, first.hits)
        return first

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        """64 concurrent calls of one new caller against a limit of 10: exactly 10 pass in each
        line, and each window's life is set once, by the server."""
        problems: list[str] = []
        orm_limiter = RateLimiter(env.orm.repo(RateLimitBucket), "10/minute", name="verify")
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            ORM: lambda: orm_limiter.hit("burst"),
            RAW: lambda: env.raw.rate_limit("verify", "burst", 10, WINDOW_MS),
        }
        for line, call in calls.items():
            answers: list[Any] = []

            async def one(call: Callable[[], Awaitable[Any]] = call, answers: list[Any] = answers) -> None:
                answers.append(await call())

            async with anyio.create_task_group() as tasks:
                for _ in range(64):
                    tasks.start_soon(one)
            allowed = sum(answer.allowed for answer in answers)
            check(problems, allowed == 10, f"{line}: {allowed} of 64 concurrent calls passed a limit of 10")
        left = await env.orm.repo(RateLimitBucket).ttl({"id": orm_limiter.bucket_id("burst")})
        check(problems, left is not None and left <= WINDOW, f"the ORM's window lives {left}")
        raw_left = int(await env.monitor.pttl(rate_key("verify", "burst")))
        check(problems, 0 < raw_left <= WINDOW_MS, f"raw's window lives {raw_left} ms")
        return problems + await audit(env, RateLimitBucket)


class TouchByToken(Case):
    """W12: a request authenticates its session by token and slides its expiry; distinct sessions
    from 64 tasks (W9 is the contended case: one session, 100 tasks)."""

    key = workload = "W12"
    lines = (ORM, RAW)
    target = Target(0.7, round_trips=1)
    ignore = ("id",)

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.concurrency = settings.concurrency
        self.sessions = settings.live_sessions
        self.title = f"touch a session by its token, {settings.concurrency} tasks"
        self.tokens: list[str] = []

    async def setup(self, env: Env) -> None:
        """The same sessions (the same tokens) in both layouts."""
        data = sessions_data(3, "w12", self.sessions, users=max(1, self.sessions // 4))
        made = await env.sessions.create_many(data)
        await env.raw.create_sessions([comparable(session) or {} for session in made], TTL_MS)
        self.tokens = [session.token for session in made]

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        chosen = [self.tokens[(i * STEP + rep) % len(self.tokens)] for i in range(count)]
        if line == ORM:
            return per_op(count, self.concurrency, lambda i: env.sessions.touch({"token": chosen[i]}))
        return per_op(count, self.concurrency, lambda i: env.raw.touch_session_by_token(chosen[i], TTL_MS))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        touched: Session | None = outcomes[ORM][-1].first
        if touched is None:
            return ["no touch of the ORM's last run returned its session"]
        left = await env.sessions.ttl({"token": touched.token})
        fresh = left is not None and left > SESSION_TTL - timedelta(minutes=1)
        check(problems, fresh, f"the ORM's touched session has {left} left")
        check(problems, await env.sessions.touch({"token": "no-such-token"}) is None, "ORM touched nothing")
        unknown = await env.raw.touch_session_by_token("no-such-token", TTL_MS)
        check(problems, unknown is None, "raw touched a session nobody has")
        return problems + await audit(env, Session) + await raw_session_audit(env)


def per_request_cases(settings: Settings) -> list[Case]:
    return [RateLimitCheck(settings), TouchByToken(settings)]
