"""The harness: start a private redis-server, seed it, and run every case against every line.

Repetitions interleave the lines (orm, raw, raw-watch, raw-batched, then the reverse order), so
that a noisy neighbour on a shared machine slows all of them rather than one. The targets are
judged once every case has run, since W10's compares two cases.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import hiredis
import pydantic
import redis
import redis.asyncio as aioredis

from redis_orm_async import Orm, create_orm
from redis_orm_async.testing import EmbeddedRedis

from .cases import Case, disagreements, user_cases
from .env import LINES, ORM, Env, Settings
from .expiry import session_cases
from .measure import LineStats, Outcome, Sample, measure
from .models import Post, Session, User, comparable, posts_data, schema, users_data
from .per_request import per_request_cases
from .raw import RawStore
from .raw_watch import WatchStore
from .rawio import RawRedis
from .targets import Target, Verdict, judge

__all__ = ["CaseResult", "Report", "Settings", "all_cases", "run"]

SEED = 20_240_601


@dataclass
class CaseResult:
    key: str
    workload: str
    title: str
    concurrency: int
    available: bool = True
    reason: str = ""
    lines: dict[str, LineStats] = field(default_factory=dict)
    target: Target | None = None
    verdict: Verdict | None = None
    problems: list[str] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return self.available and not self.problems

    def ratio(self, baseline: str) -> float | None:
        mine, theirs = self.lines.get(ORM), self.lines.get(baseline)
        if mine is None or theirs is None or not theirs.ops_per_s:
            return None
        return mine.ops_per_s / theirs.ops_per_s

    @property
    def target_met(self) -> bool | None:
        return None if self.verdict is None or not self.available else self.verdict.met

    def to_json(self) -> dict[str, Any]:
        target = None
        if self.target is not None:
            target = {**asdict(self.target), "describe": self.target.describe(), "met": self.target_met}
            target["measured"] = None if self.verdict is None else self.verdict.measured
        return {
            "key": self.key,
            "workload": self.workload,
            "title": self.title,
            "concurrency": self.concurrency,
            "available": self.available,
            "reason": self.reason,
            "lines": {line: asdict(stats) for line, stats in self.lines.items()},
            "ratios": {f"orm/{line}": self.ratio(line) for line in LINES[1:] if line in self.lines},
            "target": target,
            "agree": self.agree,
            "problems": self.problems,
            "remarks": self.remarks,
        }


@dataclass
class Report:
    meta: dict[str, Any]
    cases: list[CaseResult]

    def case(self, key: str) -> CaseResult:
        return next(case for case in self.cases if case.key == key)

    def to_json(self) -> dict[str, Any]:
        return {"meta": self.meta, "cases": [case.to_json() for case in self.cases]}


def git_commit() -> str:
    """The short commit the numbers belong to, with ``+dirty`` when the tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


async def _open_connections(env: Env, count: int) -> None:
    """Fill both pools up front, so that no timed run pays for a connection handshake."""

    async def orm_ping() -> None:
        await env.orm.backend.ping()

    async def raw_ping() -> None:
        async with env.raw.redis.connection() as connection:
            await connection.send_command("PING")
            await connection.read_response()
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tasks:
        for _ in range(count):
            tasks.start_soon(orm_ping)
            tasks.start_soon(raw_ping)


def all_cases(settings: Settings) -> list[Case]:
    return [*user_cases(settings), *session_cases(settings), *per_request_cases(settings)]


async def _seed(env: Env) -> None:
    """The same users and posts (the same ids) in the ORM's layout and in the raw layout."""
    settings = env.settings
    await env.monitor.flushdb()
    users = await env.users.create_many(users_data(SEED, "seed", settings.users))
    env.user_ids = [user.id for user in users]
    authors = env.user_ids[: settings.authors]
    posts = await env.posts.create_many(posts_data(SEED, authors, settings.posts))
    await env.raw.create_users([comparable(user) or {} for user in users], settings.bulk_chunk)
    await env.raw.create_posts([comparable(post, skip=("author",)) or {} for post in posts])


async def run_case(env: Env, case: Case, log: Callable[[str], None]) -> CaseResult:
    settings = env.settings
    result = CaseResult(case.key, case.workload, case.title, case.concurrency, target=case.target)
    reason = await case.probe(env)
    if reason is not None:
        result.available, result.reason = False, reason
        log(f"{case.key}: {reason}")
        return result
    await case.setup(env)
    ops = case.ops(env)
    for line in case.lines:
        env.run_no += 1
        await (await case.timed(env, line, 0, case.warmup(env))).run()
    samples: dict[str, list[Sample]] = {line: [] for line in case.lines}
    outcomes: dict[str, list[Outcome]] = {line: [] for line in case.lines}
    for rep in range(settings.repetitions):
        for line in case.lines if rep % 2 == 0 else case.lines[::-1]:
            env.run_no += 1
            timed = await case.timed(env, line, rep, ops)
            sample, outcome = await measure(timed, env.monitor, env.counters(line))
            samples[line].append(sample)
            outcomes[line].append(outcome)
    result.lines = {line: LineStats.of(samples[line]) for line in case.lines}
    result.problems = disagreements(case, outcomes, ops) + await case.verify(env, outcomes)
    result.remarks = case.remarks
    for line, runs in outcomes.items():
        gave_up, performed = sum(o.gave_up for o in runs), sum(s.ops for s in samples[line])
        if gave_up:
            result.remarks.append(
                f"{case.key}: {line}: {gave_up} of {performed} operations gave up after their retries"
            )
    return result


async def _run_or_report(env: Env, case: Case, log: Callable[[str], None]) -> CaseResult:
    """A case that crashes is reported as a problem, and the other cases still run."""
    started = time.perf_counter()
    try:
        result = await run_case(env, case, log)
    except Exception as exc:
        result = CaseResult(case.key, case.workload, case.title, case.concurrency, target=case.target)
        result.problems = [f"crashed: {type(leaf).__name__}: {leaf}" for leaf in _leaves(exc)]
    problems = f", problems: {result.problems}" if result.problems else ""
    log(f"{case.key}: {time.perf_counter() - started:.1f} s{problems}")
    return result


async def run(
    settings: Settings,
    *,
    json_path: Path | None = None,
    log: Callable[[str], None] = lambda text: None,
) -> Report:
    """Run the benchmark on a private server; write ``json_path`` if given and return the report."""
    cases = [c for c in all_cases(settings) if not settings.workloads or c.workload in settings.workloads]
    load_before = os.getloadavg()
    async with EmbeddedRedis() as server:
        orm_client = aioredis.Redis.from_url(server.url, **settings.client_options)
        raw_client = aioredis.Redis.from_url(server.url, **settings.client_options)
        monitor = aioredis.Redis.from_url(server.url, decode_responses=True)
        try:
            orm: Orm = create_orm(schema(), orm_client)
            raw = RawStore(RawRedis(raw_client))
            env = Env(
                settings=settings,
                orm=orm,
                users=orm.repo(User),
                posts=orm.repo(Post),
                sessions=orm.repo(Session),
                raw=raw,
                watch=WatchStore(raw.redis, raw),
                monitor=monitor,
            )
            server_info = await monitor.info("server")
            await _open_connections(env, max(settings.concurrency, settings.touch_tasks))
            await raw.load_scripts()
            log(f"seeding {settings.users} users and {settings.posts} posts")
            await _seed(env)
            results = [await _run_or_report(env, case, log) for case in cases]
            by_key = {result.key: result for result in results}
            for result in results:
                if result.target is not None and result.available:
                    result.verdict = judge(result.target, result, by_key)
        finally:
            for client in (orm_client, raw_client, monitor):
                await client.aclose()
    meta = {
        "commit": await anyio.to_thread.run_sync(git_commit),
        "mode": settings.mode,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "repetitions": settings.repetitions,
        "concurrency": settings.concurrency,
        "batch": settings.batch,
        "dataset": {
            "users": settings.users,
            "posts": settings.posts,
            "authors": settings.authors,
            "live_sessions": settings.live_sessions,
            "expired_sessions": settings.expired_sessions,
        },
        "touch_tasks": settings.touch_tasks,
        "bulk_chunk": settings.bulk_chunk,
        "redis_server": server_info.get("redis_version"),
        "python": platform.python_version(),
        "redis_py": redis.__version__,
        "hiredis": hiredis.__version__,
        "pydantic": pydantic.VERSION,
        "platform": platform.platform(),
        "cpus": _cpu_count(),
        "load_average": {"before": load_before[0], "after": os.getloadavg()[0]},
        "client_options": dict(settings.client_options),
        "argv": sys.argv[1:],
    }
    report = Report(meta, results)
    if json_path is not None:
        await anyio.to_thread.run_sync(write_json, report, json_path)
    return report


def _leaves(exc: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, which task groups raise."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
