"""The invariants under concurrent writers, against the real server."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from decimal import Decimal

import anyio
import anyio.lowlevel
import pytest

from redis_orm_async import Orm, Schema, TransactionConflictError, UniqueConstraintError

from .models import Everything, Ticket, User

SCHEMA = Schema([User, Ticket])
MakeOrm = Callable[..., Orm]


async def test_200_concurrent_creates_of_one_unique_value_have_one_winner(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA, max_attempts=500)
    users = orm.repo(User)
    outcomes: list[str] = []

    async def attempt(n: int) -> None:
        try:
            await users.create(data={"email": "race@x.io", "age": n})
            outcomes.append("won")
        except UniqueConstraintError:
            outcomes.append("unique")

    async with anyio.create_task_group() as group:
        for n in range(200):
            group.start_soon(attempt, n)
    assert outcomes.count("won") == 1 and outcomes.count("unique") == 199
    assert await users.count() == 1
    assert (await orm.audit(User)).ok


async def test_concurrent_swaps_never_leave_two_records_claiming_one_value(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA, max_attempts=500)
    users = orm.repo(User)
    a = await users.create(data={"email": "a@x.io", "age": 1})
    b = await users.create(data={"email": "b@x.io", "age": 1})

    async def move(record_id: str, email: str) -> None:
        for _ in range(50):
            with contextlib.suppress(UniqueConstraintError):
                await users.update(where={"id": record_id}, data={"email": email})
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(move, a.id, "b@x.io")
        group.start_soon(move, b.id, "a@x.io")
        group.start_soon(move, a.id, "c@x.io")
        group.start_soon(move, b.id, "c@x.io")
    found_a = await users.find_unique(where={"id": a.id})
    found_b = await users.find_unique(where={"id": b.id})
    assert found_a is not None and found_b is not None and found_a.email != found_b.email
    report = await orm.audit(User)
    assert report.ok, str(report)


async def test_a_storm_of_random_writers_leaves_zero_index_drift(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA, max_attempts=1000)
    users = orm.repo(User)
    rng = random.Random(1234)
    emails = [f"user{n}@x.io" for n in range(40)]
    statuses = ["active", "banned", "pending"]
    counts = {"create": 0, "update": 0, "delete": 0, "unique": 0}

    async def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(5000 // 32 + 1):
            action = local.choice(["create", "update", "update", "delete"])
            email = local.choice(emails)
            try:
                if action == "create":
                    await users.create(data={"email": email, "age": local.randint(0, 90)})
                elif action == "update":
                    data: dict[str, object] = local.choice(
                        [
                            {"email": local.choice(emails)},
                            {"age": local.randint(0, 90)},
                            {"status": local.choice(statuses)},
                            {"age": {"increment": 1}, "status": local.choice(statuses)},
                        ]
                    )
                    await users.update(where={"email": email}, data=data)
                else:
                    await users.delete(where={"email": email})
                counts[action] += 1
            except UniqueConstraintError:
                counts["unique"] += 1

    async with anyio.create_task_group() as group:
        for _n in range(32):
            group.start_soon(writer, rng.randint(0, 10**9))
    assert sum(counts.values()) >= 5000
    report = await orm.audit(User)
    assert report.ok, str(report)
    assert report.records == await users.count()


async def test_retry_budget_exhaustion_is_a_retryable_conflict(make_orm: MakeOrm) -> None:
    """A Decimal counter is read, computed and written back guarded by what was read: with one
    attempt each, concurrent writers collide, and each collision is a retryable error."""
    orm = make_orm(Schema([Everything]), max_attempts=1)
    rows = orm.repo(Everything)
    row = await rows.create(data={"price": Decimal(0)})
    conflicts: list[TransactionConflictError] = []

    async def bump() -> None:
        for _ in range(30):
            try:
                await rows.update(where={"id": row.id}, data={"price": {"increment": Decimal(1)}})
            except TransactionConflictError as exc:
                conflicts.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(16):
            group.start_soon(bump)
    assert conflicts, "16 writers with one attempt each must collide at least once"
    assert all(c.retryable and c.code == "transaction_conflict" for c in conflicts)
    final = await rows.find_unique(where={"id": row.id})
    assert final is not None and final.price == 16 * 30 - len(conflicts)


@pytest.mark.parametrize("tasks", [16])
async def test_guarded_read_modify_writes_land_exactly(make_orm: MakeOrm, tasks: int) -> None:
    """Ticket.number is part of a compound unique: each increment moves its claim too."""
    orm = make_orm(SCHEMA, max_attempts=10_000)
    tickets = orm.repo(Ticket)
    await tickets.create(data={"id": 1, "org": "o", "number": 0})

    async def bump() -> None:
        for _ in range(10):
            await tickets.update(where={"id": 1}, data={"number": {"increment": 1}})

    async with anyio.create_task_group() as group:
        for _ in range(tasks):
            group.start_soon(bump)
    final = await tickets.find_unique(where={"id": 1})
    assert final is not None and final.number == tasks * 10
