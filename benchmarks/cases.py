"""The workloads W1-W8: per line, what one timed run does, and how the lines are checked to agree.

Each case prepares a run outside the timer (inputs, fresh records to delete, an empty database),
then returns a ``Timed`` whose operations are the only thing measured. Every line gets the same
inputs for the same repetition, so their first results can be compared field by field; each case
also runs a few cross-checks (what one line wrote, the other reads back) and the ORM's index audit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from redis_orm_async import Model, UniqueConstraintError

from .env import LINES, ORM, RAW, RAW_BATCHED, Env
from .measure import Outcome, Timed, batched, per_op, whole
from .models import Post, User, comparable, users_data
from .raw import DuplicateError

NEW_FIELDS = ("id", "email", "name")
"""Fields that differ between lines' creates of the same input (ids and per-run tags)."""


@dataclass(frozen=True)
class Target:
    """The goal from the issue: ``orm / baseline >= minimum`` and, optionally, a round-trip cap."""

    baseline: str
    minimum: float
    max_round_trips: float | None = None

    def describe(self) -> str:
        text = f">= {self.minimum:.2f} x {self.baseline}"
        if self.max_round_trips is not None:
            text += f", <= {self.max_round_trips:g} RT/op"
        return text


class Case:
    key = ""
    workload = ""
    title = ""
    lines: tuple[str, ...] = (ORM, RAW)
    concurrency = 1
    target: Target | None = None
    ignore: tuple[str, ...] = NEW_FIELDS
    """Fields left out when the first results of different lines are compared."""

    def ops(self, env: Env) -> int:
        return env.settings.ops[self.key]

    async def probe(self, env: Env) -> str | None:
        """Why the ORM cannot run this case yet, or None."""
        return None

    async def setup(self, env: Env) -> None:
        """Once, before the warm-up and the repetitions."""

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        raise NotImplementedError

    def digest(self, first: Any) -> Any:
        if isinstance(first, list):
            return [self.digest(item) for item in first]
        if isinstance(first, tuple):
            return tuple(self.digest(item) for item in first)
        if isinstance(first, BaseModel):
            return comparable(first, skip=self.ignore)
        return first

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        """Cross-checks beyond equal outcomes; each problem is one line of text."""
        return []


def tag(env: Env, line: str, name: str) -> str:
    """A per-run email tag: letters and digits only, so no key needs escaping."""
    return f"{name}r{env.run_no}l{LINES.index(line)}"


async def audit(env: Env, model: type[Model]) -> list[str]:
    report = await env.orm.audit(model)
    return [] if report.ok else [str(report)]


def check(problems: list[str], ok: bool, text: str) -> None:
    if not ok:
        problems.append(text)


class Create(Case):
    workload = "W1"

    def __init__(self, concurrent: bool) -> None:
        self.key = "W1-c64" if concurrent else "W1-seq"
        self.title = "create (unique email)" + (", 64 tasks" if concurrent else ", sequential")
        self.concurrent = concurrent
        self.concurrency = 64 if concurrent else 1
        self.lines = (ORM, RAW) if concurrent else (ORM, RAW, RAW_BATCHED)
        self.target = Target(RAW, 0.60, 3) if concurrent else None

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        inputs = users_data(rep, tag(env, line, "wa"), count)
        if line == ORM:
            return per_op(count, self.concurrency, lambda i: env.users.create(inputs[i]))
        if line == RAW:
            return per_op(count, self.concurrency, lambda i: env.raw.create_user(inputs[i]))
        return batched(count, env.settings.batch, lambda s, n: env.raw.create_users(inputs[s : s + n], n))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        raw_made = outcomes[RAW][-1].first
        orm_made = outcomes[ORM][-1].first
        seen = await env.users.find_unique({"email": raw_made.email})
        check(problems, comparable(seen) == comparable(raw_made), "the ORM reads a raw create differently")
        seen_raw = await env.raw.get_user(orm_made.id)
        check(problems, comparable(seen_raw) == comparable(orm_made), "raw reads an ORM create differently")
        again = comparable(raw_made, skip=("id",))
        try:
            await env.users.create(again or {})
            problems.append("the ORM accepted a duplicate email written by the raw line")
        except UniqueConstraintError:
            pass
        try:
            await env.raw.create_user(comparable(orm_made, skip=("id",)) or {})
            problems.append("the raw line accepted a duplicate email written by the ORM")
        except DuplicateError:
            pass
        return problems + await audit(env, User)


class GetById(Case):
    workload = "W2"
    ignore = ()

    def __init__(self, concurrent: bool) -> None:
        self.key = "W2-c64" if concurrent else "W2-seq"
        self.title = "find_unique by id" + (", 64 tasks" if concurrent else ", sequential")
        self.concurrent = concurrent
        self.concurrency = 64 if concurrent else 1
        self.lines = (ORM, RAW) if concurrent else (ORM, RAW, RAW_BATCHED)
        self.target = Target(RAW, 0.80) if concurrent else None

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        ids = env.user_ids
        step = 7919  # a prime, so that consecutive gets touch scattered records
        chosen = [ids[(i * step) % len(ids)] for i in range(count)]
        if line == ORM:
            return per_op(count, self.concurrency, lambda i: env.users.find_unique({"id": chosen[i]}))
        if line == RAW:
            return per_op(count, self.concurrency, lambda i: env.raw.get_user(chosen[i]))
        return batched(count, env.settings.batch, lambda s, n: env.raw.get_users(chosen[s : s + n]))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        check(problems, await env.users.find_unique({"id": "missing"}) is None, "ORM found a missing id")
        check(problems, await env.raw.get_user("missing") is None, "raw found a missing id")
        return problems


class QueryCase(Case):
    """A read through ``find_many``, which may not exist yet: then the case is skipped, with why."""

    ignore = ()

    def orm_call(self, env: Env) -> Awaitable[Any]:
        raise NotImplementedError

    def raw_call(self, env: Env) -> Awaitable[Any]:
        raise NotImplementedError

    async def probe(self, env: Env) -> str | None:
        if not hasattr(env.users, "find_many"):
            return "not available: Repository.find_many does not exist yet"
        try:
            await self.orm_call(env)
        except Exception as exc:
            return f"not available: {type(exc).__name__}: {exc}"
        return None

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        call: Callable[[Env], Awaitable[Any]] = self.orm_call if line == ORM else self.raw_call
        return per_op(count, 1, lambda i: call(env))


class ByStatus(QueryCase):
    key = workload = "W3"
    title = 'status == "active", page of 50'
    target = Target(RAW, 0.80, 2)

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(where={"status": "active"}, take=env.settings.page)

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.users_with_status("active", env.settings.page)


class AgeRange(QueryCase):
    key = workload = "W4"
    title = "20 <= age < 30 by age, first 50"
    target = Target(RAW, 0.80, 2)

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(
            where={"age": {"gte": 20, "lt": 30}}, order_by={"age": "asc"}, take=env.settings.page
        )

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.users_by_age(20, 30, env.settings.page)


def author_of(post: Any) -> Any:
    """The author the ORM loaded onto a post."""
    return getattr(post, "author", None)


class PostsWithAuthors(QueryCase):
    key = workload = "W5"
    title = "1,000 posts with their authors"
    target = Target(RAW, 0.80, 3)

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.posts.find_many(take=env.settings.posts_take, include={"author": True})

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.posts_with_authors(env.settings.posts_take)

    def digest(self, first: Any) -> Any:
        if first and isinstance(first[0], Post):
            first = [(post, author_of(post)) for post in first]
        return [(comparable(post, skip=("author",)), comparable(author)) for post, author in first]


class UpdateStatus(Case):
    key = workload = "W6"
    title = "update indexed status by id"
    lines = (ORM, RAW, RAW_BATCHED)
    target = Target(RAW, 0.50)
    ignore = ("status",)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        chosen = env.user_ids[:count]
        status = f"st{env.run_no}"
        if line == ORM:
            return per_op(count, 1, lambda i: env.users.update({"id": chosen[i]}, {"status": status}))
        if line == RAW:
            return per_op(count, 1, lambda i: env.raw.set_status(chosen[i], status))
        return batched(
            count, env.settings.batch, lambda s, n: env.raw.set_status_batch(chosen[s : s + n], status)
        )

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        first, second = env.user_ids[0], env.user_ids[1]
        await env.raw.set_status(first, "bychecka")
        seen = await env.users.find_unique({"id": first})
        check(problems, seen is not None and seen.status == "bychecka", "the ORM missed a raw update")
        await env.users.update({"id": second}, {"status": "bycheckb"})
        seen_raw = await env.raw.get_user(second)
        check(problems, seen_raw is not None and seen_raw.status == "bycheckb", "raw missed an ORM update")
        missing = await env.users.update({"id": "missing"}, {"status": "x"})
        check(problems, missing is None, "the ORM updated a missing record")
        check(problems, await env.raw.set_status("missing", "x") is None, "raw updated a missing record")
        return problems + await audit(env, User)


async def fresh_users(env: Env, rep: int, count: int, name: str) -> list[str]:
    """Create users to be deleted, outside the timer."""
    made = await env.users.create_many(users_data(rep, f"{name}r{env.run_no}", count))
    return [user.id for user in made]


class Delete(Case):
    key = workload = "W7"
    title = "delete by id"
    lines = (ORM, RAW, RAW_BATCHED)
    target = Target(RAW, 0.50)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        chosen = await fresh_users(env, rep, count, "wd")
        if line == ORM:
            return per_op(count, 1, lambda i: env.users.delete({"id": chosen[i]}))
        if line == RAW:
            return per_op(count, 1, lambda i: env.raw.delete_user(chosen[i]))
        return batched(count, env.settings.batch, lambda s, n: env.raw.delete_users(chosen[s : s + n]))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        first, second = await fresh_users(env, 0, 2, "wv")
        check(problems, await env.raw.delete_user(first) is not None, "raw did not delete an ORM record")
        check(problems, await env.users.find_unique({"id": first}) is None, "the ORM still sees a raw delete")
        check(problems, await env.users.delete({"id": second}) is not None, "the ORM did not delete")
        check(problems, await env.raw.get_user(second) is None, "raw still sees an ORM delete")
        check(problems, await env.users.delete({"id": first}) is None, "the ORM deleted twice")
        check(problems, await env.raw.delete_user(second) is None, "raw deleted twice")
        return problems + await audit(env, User)


class CreateMany(Case):
    key = workload = "W8"
    title = "create_many of 10,000"
    lines = (ORM, RAW, RAW_BATCHED)
    target = Target(RAW_BATCHED, 0.70)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        await env.monitor.flushdb()
        inputs = users_data(rep, tag(env, line, "wm"), count)
        if line == ORM:
            return whole(count, lambda: env.users.create_many(inputs))
        chunk = env.settings.create_many_chunk if line == RAW else env.settings.batch
        return whole(count, lambda: env.raw.create_users(inputs, chunk))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        count = await env.users.count()
        check(problems, count == self.ops(env), f"{count} users after create_many, not {self.ops(env)}")
        return problems + await audit(env, User)


def all_cases() -> list[Case]:
    """In run order: the reads see the freshly seeded data; W8 empties the database each run."""
    return [
        GetById(concurrent=False),
        GetById(concurrent=True),
        ByStatus(),
        AgeRange(),
        PostsWithAuthors(),
        UpdateStatus(),
        Delete(),
        Create(concurrent=False),
        Create(concurrent=True),
        CreateMany(),
    ]


def disagreements(case: Case, outcomes: dict[str, list[Outcome]], ops: int) -> list[str]:
    """Every run did all its operations, and every line's first result matches the ORM's."""
    problems: list[str] = []
    for line, runs in outcomes.items():
        for rep, outcome in enumerate(runs):
            if outcome.done != ops:
                problems.append(f"{line} run {rep}: {outcome.done} of {ops} operations returned a result")
    reference: Sequence[Outcome] = outcomes[ORM]
    for line in case.lines[1:]:
        for rep, (mine, theirs) in enumerate(zip(reference, outcomes[line], strict=True)):
            if case.digest(mine.first) != case.digest(theirs.first):
                problems.append(f"{line} run {rep}: first result differs from the ORM's")
    return problems
