"""The use-case examples in docs/examples, run against the real server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import anyio

from redis_orm_async import Orm, Schema

from .test_docs import load_example

MakeOrm = Callable[..., Orm]
sessions = load_example("docs/examples/sessions.py")
tokens = load_example("docs/examples/verification_tokens.py")
limiter = load_example("docs/examples/rate_limiter.py")
SCHEMA = Schema([sessions.LoginSession, tokens.VerificationToken, limiter.RateBucket])


async def test_login_sessions_slide_expire_and_are_revoked_per_user(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    short = timedelta(milliseconds=600)
    phone = await sessions.login(orm, "ada", "phone", ttl=short)
    laptop = await sessions.login(orm, "ada", "laptop")
    other = await sessions.login(orm, "bob", "phone")
    for _ in range(3):  # 1.2 s in all: alive only because each use slides it
        await anyio.sleep(0.4)
        assert await sessions.authenticate(orm, phone, ttl=short) == "ada"
    await anyio.sleep(0.8)
    assert await sessions.authenticate(orm, phone, ttl=short) is None, "expired sessions are rejected"
    assert await sessions.logout_everywhere(orm, "ada") == 1
    assert await sessions.authenticate(orm, laptop) is None
    assert await sessions.authenticate(orm, other) == "bob"


async def test_verification_tokens_are_single_use_even_under_concurrency(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    code = await tokens.issue(orm, "ada@example.com")
    results: list[str | None] = []

    async def consumer() -> None:
        results.append(await tokens.consume(orm, code))

    async with anyio.create_task_group() as group:
        for _ in range(20):
            group.start_soon(consumer)
    assert results.count("ada@example.com") == 1 and results.count(None) == 19
    expiring = await tokens.issue(orm, "bob@example.com", ttl=timedelta(milliseconds=100))
    await anyio.sleep(0.2)
    assert await tokens.consume(orm, expiring) is None, "expired tokens are rejected"


async def test_rate_limiter_allows_exactly_the_limit_per_window(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    window = timedelta(seconds=30)
    decisions: list[bool] = []

    async def request() -> None:
        decisions.append(await limiter.allow(orm, "client-1", 10, window))

    before = orm.backend.stats.round_trips
    async with anyio.create_task_group() as group:
        for _ in range(64):
            group.start_soon(request)
    assert decisions.count(True) == 10 and decisions.count(False) == 54
    assert orm.backend.stats.round_trips - before <= 64 + 1  # one per request (and one script load)
    assert await limiter.allow(orm, "client-2", 10, window)
    assert (await orm.audit(limiter.RateBucket)).ok
    left = await orm.repo(limiter.RateBucket).ttl(where={"id": "client-1"})
    assert left is not None and left <= window, "the window's expiry is set once, never slid"
