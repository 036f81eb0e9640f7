"""The workloads on expiring records: W9 (contended sliding-expiry touches) and W10 (a page read
before and after 100,000 records of the same model expired without a sweep)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

import anyio

from redis_orm_async import TransactionConflictError

from .cases import Case, audit, check, tag
from .env import ORM, RAW, RAW_WATCH, Env, Settings
from .measure import GaveUp, Outcome, Timed, per_op
from .models import SESSION_TTL, Session, comparable, sessions_data
from .raw import SESSION_IDS, ConflictError
from .raw_audit import audit_sessions
from .targets import Target

TTL_MS = int(SESSION_TTL.total_seconds() * 1000)
CREATE_CHUNK = 5000
"""W10's expired sessions are created this many per call, each call's TTL aimed at one deadline."""
SETTLE_POLL_S = 0.25
SETTLE_MAX_S = 60.0


async def raw_session_audit(env: Env) -> list[str]:
    return [f"raw audit: {problem}" for problem in await audit_sessions(env.monitor)]


class Touch(Case):
    """W9: ``touch`` of one session (sliding expiry) from 100 tasks at once."""

    key = workload = "W9"
    lines = (ORM, RAW, RAW_WATCH)
    target = Target(round_trips=1.2)
    ignore = ("id", "token")
    budgeted = True

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.concurrency = settings.touch_tasks
        self.title = f"touch one session, {settings.touch_tasks} tasks"

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        data = sessions_data(rep, tag(env, line, "wt"), 1, users=10)[0]
        touch: Callable[[], Awaitable[Any]]
        if line == ORM:
            session_id = (await env.sessions.create(data)).id
            touch = partial(env.sessions.touch, {"id": session_id})
        else:
            (session,) = await env.raw.create_sessions([data], TTL_MS)
            store = env.raw if line == RAW else env.watch
            touch = partial(store.touch_session, session.id, TTL_MS)

        async def one(index: int) -> Any:
            try:
                return await touch()
            except (TransactionConflictError, ConflictError) as exc:
                raise GaveUp(str(exc)) from exc

        return per_op(count, self.concurrency, one, self.budget(env))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        touched: Session | None = outcomes[ORM][-1].first
        if touched is None:
            return ["no touch of the ORM's last run returned its session"]
        left = await env.sessions.ttl({"id": touched.id})
        check(problems, left is not None and left > SESSION_TTL - timedelta(minutes=1), f"ORM ttl is {left}")
        seen = await env.sessions.find_unique({"token": touched.token})
        check(problems, comparable(seen) == comparable(touched), "the ORM reads its session differently")
        return problems + await audit(env, Session) + await raw_session_audit(env)


class PageRead(Case):
    """W10: the first 50 active sessions in id order, with none expired and then with a backlog.

    The live sessions are created first, so the page is theirs in both runs: whatever the
    backlog, a correct read needs only the first 50 entries of the status index. The expired
    sessions (newer ids, the same statuses and users) are created after the first measurement,
    with TTLs aimed at one deadline after the last of them is written, so that nothing is due
    while any write runs (the ORM may sweep a few due records per write); then the harness waits
    until Redis itself has dropped their keys, and only reads. ``sweep()`` afterwards must find
    every one of them still unswept.
    """

    workload = "W10"
    lines = (ORM, RAW)
    ignore = ()
    budgeted = True

    def __init__(self, expired: bool, settings: Settings) -> None:
        super().__init__()
        self.expired = expired
        self.key = "W10-expired" if expired else "W10-fresh"
        backlog = f"{settings.expired_sessions:,} unswept expired" if expired else "none expired"
        self.title = f'status == "active" sessions, page of 50, {backlog}'
        if expired:
            self.target = Target(slowdown=1.2, reference="W10-fresh")

    async def setup(self, env: Env) -> None:
        if self.expired:
            await self._expire(env)
            return
        await env.monitor.flushdb()
        settings = env.settings
        data = sessions_data(1, "live", settings.live_sessions, users=settings.live_sessions // 4)
        started = time.perf_counter()
        made = await env.sessions.create_many(data)
        env.notes["session_create_s"] = (time.perf_counter() - started) / len(made)
        await env.raw.create_sessions([comparable(session) or {} for session in made], TTL_MS)

    async def _expire(self, env: Env) -> None:
        """The ORM's expired sessions first, each call's TTL aimed at a deadline twice the time
        their creation should take (from the live sessions' rate), so that none is due while the
        ORM writes; then raw's (raw never sweeps on a write), aimed at the same deadline."""
        settings = env.settings
        count = settings.expired_sessions
        per_orm = env.notes.get("session_create_s", 1e-4)
        budget = 2.0 * count * per_orm + 1.0
        started = time.perf_counter()
        deadline = started + budget
        data = sessions_data(2, "gone", count, users=settings.live_sessions // 4)

        def left() -> timedelta:
            return timedelta(milliseconds=max(1, int((deadline - time.perf_counter()) * 1000)))

        for start in range(0, count, CREATE_CHUNK):
            await env.sessions.create_many(data[start : start + CREATE_CHUNK], ttl=left())
        orm_done = time.perf_counter()
        if orm_done > deadline:
            self.remarks.append(
                f"{self.key}: the ORM's expired sessions took {orm_done - deadline:.1f} s longer than "
                "their deadline: its last writes may have swept some (the sweep check below says)"
            )
        for start in range(0, count, CREATE_CHUNK):
            ttl_ms = left() // timedelta(milliseconds=1)
            await env.raw.create_sessions(data[start : start + CREATE_CHUNK], ttl_ms)
        raw_done = time.perf_counter()
        await anyio.sleep(max(0.0, deadline - time.perf_counter()) + 0.05)
        settled = await self._settle(env)
        self.remarks.append(
            f"{self.key}: {count:,} sessions per line expired unswept (created in {orm_done - started:.1f} s "
            f"by the ORM, then {raw_done - orm_done:.1f} s by raw, all due {budget:.1f} s after the "
            f"first); Redis dropped their keys within {settled:.1f} s, then only reads ran"
        )

    async def _settle(self, env: Env) -> float:
        """Wait until Redis's active expiry has dropped the expired keys (their count stops
        moving), at its highest effort for the wait only: a backlog in production is index
        entries of records long gone, and the reads should not share the server with the purge."""
        started = time.perf_counter()
        last = -1
        await env.monitor.config_set("active-expire-effort", 10)
        try:
            while time.perf_counter() - started < SETTLE_MAX_S:
                stats: dict[str, Any] = await env.monitor.info("stats")
                now = int(stats["expired_keys"])
                if now == last:
                    break
                last = now
                await anyio.sleep(SETTLE_POLL_S)
        finally:
            await env.monitor.config_set("active-expire-effort", 1)
        return time.perf_counter() - started

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.sessions.find_many(where={"status": "active"}, take=env.settings.page)

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.sessions_with_status("active", env.settings.page)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        call: Callable[[Env], Awaitable[Any]] = self.orm_call if line == ORM else self.raw_call
        return per_op(count, 1, lambda i: call(env), self.budget(env))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        live = env.settings.live_sessions
        if self.expired:
            expired = env.settings.expired_sessions
            swept = await env.sessions.sweep()
            check(problems, swept == expired, f"ORM: {swept} of {expired} expired sessions were unswept")
            swept = await env.raw.sweep_sessions()
            check(problems, swept == expired, f"raw: {swept} of {expired} expired sessions were unswept")
        count = await env.sessions.count()
        check(problems, count == live, f"the ORM counts {count} live sessions, not {live}")
        count = await env.monitor.zcard(SESSION_IDS)
        check(problems, count == live, f"raw holds {count} session ids, not {live}")
        return problems + await audit(env, Session) + await raw_session_audit(env)


def session_cases(settings: Settings) -> list[Case]:
    return [Touch(settings), PageRead(False, settings), PageRead(True, settings)]
