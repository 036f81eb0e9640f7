"""Timing one run of one line: wall time, client CPU, server commands and client round trips."""

from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis.asyncio as aioredis


@dataclass
class Outcome:
    """What one run did: how many operations succeeded, and the first result, for comparison."""

    done: int
    first: Any = None
    ops: int | None = None
    """Operations performed, when a time budget stopped the run before all it was asked for."""
    gave_up: int = 0
    """Operations that gave up after their retries (``GaveUp``): a cost, not a wrong answer."""


class GaveUp(Exception):
    """Raised by an operation that gave up after its retries under contention; ``per_op``
    counts it rather than failing the run."""


_GAVE_UP = object()


@dataclass
class Timed:
    """One prepared run: ``ops`` operations, all performed by awaiting ``run()``."""

    ops: int
    run: Callable[[], Awaitable[Outcome]]


@dataclass
class Sample:
    ops: int
    seconds: float
    cpu_seconds: float
    server_commands: int
    round_trips: int
    client_commands: int
    server_cpu_seconds: float


@dataclass
class LineStats:
    """Medians over the repetitions of one line of one case, per operation."""

    ops: int
    ops_per_s: float
    commands_per_op: float
    round_trips_per_op: float
    cpu_us_per_op: float
    server_cpu_us_per_op: float
    client_commands_per_op: float
    ops_per_s_runs: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> LineStats:
        def median(values: list[float]) -> float:
            return float(statistics.median(values))

        runs = [s.ops / s.seconds if s.seconds > 0 else float("inf") for s in samples]
        return cls(
            ops=int(statistics.median([s.ops for s in samples])),
            ops_per_s=median(runs),
            commands_per_op=median([s.server_commands / s.ops for s in samples]),
            round_trips_per_op=median([s.round_trips / s.ops for s in samples]),
            cpu_us_per_op=median([s.cpu_seconds * 1e6 / s.ops for s in samples]),
            server_cpu_us_per_op=median([s.server_cpu_seconds * 1e6 / s.ops for s in samples]),
            client_commands_per_op=median([s.client_commands / s.ops for s in samples]),
            ops_per_s_runs=runs,
        )


def _first_and_count(results: list[Any], ops: int | None = None) -> Outcome:
    """The first operation's result (the first that did not give up) and the counts."""
    gave_up = sum(result is _GAVE_UP for result in results)
    first = next((result for result in results if result is not _GAVE_UP), None)
    done = sum(result is not None and result is not _GAVE_UP for result in results)
    return Outcome(done=done, first=first, ops=ops, gave_up=gave_up)


async def _attempt(op: Callable[[int], Awaitable[Any]], index: int) -> Any:
    try:
        return await op(index)
    except GaveUp:
        return _GAVE_UP


def per_op(
    count: int, concurrency: int, op: Callable[[int], Awaitable[Any]], budget_s: float | None = None
) -> Timed:
    """``count`` calls of ``op(i)``, one after another or from ``concurrency`` tasks; with a
    ``budget_s``, no new call starts once that many seconds have passed."""

    def deadline() -> float:
        return math.inf if budget_s is None else time.perf_counter() + budget_s

    async def sequential() -> Outcome:
        results: list[Any] = []
        stop = deadline()
        for index in range(count):
            results.append(await _attempt(op, index))
            if time.perf_counter() > stop:
                return _first_and_count(results, len(results))
        return _first_and_count(results)

    async def concurrent() -> Outcome:
        results: list[Any] = [None] * count
        indexes = itertools.count()
        stop = deadline()
        started = 0

        async def worker() -> None:
            nonlocal started
            while (index := next(indexes)) < count and (index == 0 or time.perf_counter() <= stop):
                started += 1
                results[index] = await _attempt(op, index)

        async with anyio.create_task_group() as tasks:
            for _ in range(min(concurrency, count)):
                tasks.start_soon(worker)
        return _first_and_count(results[:started], None if started == count else started)

    return Timed(count, sequential if concurrency <= 1 else concurrent)


def batched(count: int, size: int, batch: Callable[[int, int], Awaitable[list[Any]]]) -> Timed:
    """``count`` operations as calls of ``batch(start, n)`` with up to ``size`` operations each."""

    async def run() -> Outcome:
        results: list[Any] = []
        for start in range(0, count, size):
            results.extend(await batch(start, min(size, count - start)))
        return _first_and_count(results)

    return Timed(count, run)


def whole(count: int, call: Callable[[], Awaitable[list[Any]]]) -> Timed:
    """One call that performs all ``count`` operations (a bulk write)."""

    async def run() -> Outcome:
        return _first_and_count(await call())

    return Timed(count, run)


async def server_counters(monitor: aioredis.Redis) -> tuple[int, float]:
    """Calls of every command the server has run (minus the INFO calls that ask), and its CPU time."""
    stats: dict[str, Any] = await monitor.info("commandstats")
    calls = sum(int(entry["calls"]) for name, entry in stats.items() if name != "cmdstat_info")
    cpu: dict[str, Any] = await monitor.info("cpu")
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def measure(
    timed: Timed, monitor: aioredis.Redis, counters: Callable[[], tuple[int, int]]
) -> tuple[Sample, Outcome]:
    """Run ``timed`` once; ``counters()`` gives the line's own (commands, round trips) so far."""
    gc.collect()
    commands_before, server_cpu_before = await server_counters(monitor)
    client_before, trips_before = counters()
    cpu_start = time.process_time()
    start = time.perf_counter()
    outcome = await timed.run()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    client_after, trips_after = counters()
    commands_after, server_cpu_after = await server_counters(monitor)
    sample = Sample(
        ops=timed.ops if outcome.ops is None else outcome.ops,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        server_commands=commands_after - commands_before,
        round_trips=trips_after - trips_before,
        client_commands=client_after - client_before,
        server_cpu_seconds=server_cpu_after - server_cpu_before,
    )
    return sample, outcome
