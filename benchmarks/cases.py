"""The workloads W1-W8: per line, what one timed run does, and how the lines are checked to agree.

Each case prepares a run outside the timer (inputs, fresh records to delete, an empty database),
then returns a ``Timed`` whose operations are the only thing measured. Every line gets the same
inputs for the same repetition, so their first results can be compared field by field. The ORM
and the raw lines keep different key layouts, so they are compared by their results; the raw
lines (Lua and WATCH) share one layout, so each also reads back what the other wrote. Each case
ends with the ORM's index audit and the raw layout's own audit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
from pydantic import BaseModel

from redis_orm_async import Model, UniqueConstraintError, asc

from .env import LINES, ORM, RAW, RAW_BATCHED, RAW_WATCH, Env, Settings
from .measure import Outcome, Timed, batched, per_op, whole
from .models import Post, User, comparable, users_data
from .raw import USER_AGE, USER_IDS, DuplicateError, status_key, user_key
from .raw_audit import audit_users
from .targets import Target

NEW_FIELDS = ("id", "email", "name")
"""Fields that differ between lines' creates of the same input (ids and per-run tags)."""


class Case:
    key = ""
    workload = ""
    title = ""
    lines: tuple[str, ...] = (ORM, RAW)
    concurrency = 1
    target: Target | None = None
    ignore: tuple[str, ...] = NEW_FIELDS
    """Fields left out when the first results of different lines are compared."""
    budgeted = False
    """Whether a run stops taking new operations after ``Settings.run_budget_s``."""

    def __init__(self) -> None:
        self.remarks: list[str] = []
        """Facts about the run worth printing under the table (not problems)."""

    def ops(self, env: Env) -> int:
        return env.settings.ops[self.key]

    def warmup(self, env: Env) -> int:
        return min(env.settings.warmup, self.ops(env), 10 if self.budgeted else env.settings.warmup)

    def budget(self, env: Env) -> float | None:
        return env.settings.run_budget_s if self.budgeted else None

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
    """A per-run tag: letters and digits only, so values never need escaping in either layout."""
    return f"{name}r{env.run_no}l{LINES.index(line)}"


async def audit(env: Env, model: type[Model]) -> list[str]:
    report = await env.orm.audit(model)
    return [] if report.ok else [f"orm audit: {report}"]


async def raw_audit(env: Env) -> list[str]:
    return [f"raw audit: {problem}" for problem in await audit_users(env.monitor)]


def check(problems: list[str], ok: bool, text: str) -> None:
    if not ok:
        problems.append(text)


async def refused(call: Awaitable[Any]) -> bool:
    """Whether a create was refused as a duplicate (by the ORM or a raw line)."""
    try:
        await call
    except (UniqueConstraintError, DuplicateError):
        return True
    return False


async def winners(create: CreateFn, data: Mapping[str, Any]) -> int:
    """How many of 16 concurrent creates of one unique value succeed (exactly one must)."""
    won = 0

    async def one() -> None:
        nonlocal won
        if not await refused(create(data)):
            won += 1

    async with anyio.create_task_group() as tasks:
        for _ in range(16):
            tasks.start_soon(one)
    return won


def fresh(env: Env, name: str, count: int = 1) -> list[dict[str, Any]]:
    env.run_no += 1
    return users_data(env.run_no, f"{name}r{env.run_no}", count)


CreateFn = Callable[[Mapping[str, Any]], Awaitable[Any]]


def creators(env: Env) -> dict[str, CreateFn]:
    """One user create per line (raw-batched aside)."""
    return {
        ORM: lambda data: env.users.create(data),
        RAW: env.raw.create_user,
        RAW_WATCH: env.watch.create_user,
    }


class Create(Case):
    workload = "W1"

    def __init__(self, concurrent: bool, settings: Settings) -> None:
        super().__init__()
        self.key = "W1-c64" if concurrent else "W1-seq"
        tasks = f", {settings.concurrency} tasks"
        self.title = "create (unique email)" + (tasks if concurrent else ", sequential")
        self.concurrency = settings.concurrency if concurrent else 1
        self.lines = (ORM, RAW, RAW_WATCH) if concurrent else (ORM, RAW, RAW_WATCH, RAW_BATCHED)
        self.target = Target(0.75, round_trips=1) if concurrent else None

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        inputs = users_data(rep, tag(env, line, "wa"), count)
        if line == RAW_BATCHED:
            return batched(count, env.settings.batch, lambda s, n: env.raw.create_users(inputs[s : s + n], n))
        create = creators(env)[line]
        return per_op(count, self.concurrency, lambda i: create(inputs[i]))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        made: dict[str, Any] = {line: outcomes[line][-1].first for line in self.lines}
        seen = await env.users.find_unique({"email": made[ORM].email})
        check(problems, comparable(seen) == comparable(made[ORM]), "the ORM reads its create differently")
        for line in (RAW, RAW_WATCH):
            seen_raw = await env.raw.get_user(made[line].id)
            same = comparable(seen_raw) == comparable(made[line])
            check(problems, same, f"raw reads {line}'s create differently")
        again = comparable(made[ORM], skip=("id",)) or {}
        check(problems, await refused(env.users.create(again)), "the ORM accepted a duplicate email")
        by_watch = comparable(made[RAW_WATCH], skip=("id",)) or {}
        by_lua = comparable(made[RAW], skip=("id",)) or {}
        check(problems, await refused(env.raw.create_user(by_watch)), "raw accepted raw-watch's email again")
        check(problems, await refused(env.watch.create_user(by_lua)), "raw-watch accepted raw's email again")
        check(problems, await refused(env.raw.create_users([by_lua], 1)), "raw-batched took an email again")
        creates = creators(env)
        for line, create in creates.items():
            won = await winners(create, fresh(env, "wu")[0])
            check(problems, won == 1, f"{line}: {won} of 16 concurrent creates of one email succeeded")
        for line, create in creates.items():
            if line != ORM:
                problems.extend(await self._takeover(env, line, create))
        return problems + await audit(env, User) + await raw_audit(env)

    async def _takeover(self, env: Env, line: str, create: CreateFn) -> list[str]:
        """A claim whose record vanished (evicted, say) is stale: the email can be taken again.
        The vanished record's index entries are then removed, as a repair would."""
        data = fresh(env, "wk")[0]
        gone = await create(data)
        await env.monitor.delete(user_key(gone.id))
        try:
            await create(data)
        except DuplicateError:
            return [f"{line} refused an email whose holder no longer exists"]
        finally:
            await env.monitor.zrem(USER_IDS, gone.id)
            await env.monitor.zrem(USER_AGE, gone.id)
            await env.monitor.zrem(status_key(gone.status), gone.id)
        return []


class GetById(Case):
    workload = "W2"
    ignore = ()

    def __init__(self, concurrent: bool, settings: Settings) -> None:
        super().__init__()
        self.key = "W2-c64" if concurrent else "W2-seq"
        tasks = f", {settings.concurrency} tasks"
        self.title = "find_unique by id" + (tasks if concurrent else ", sequential")
        self.concurrency = settings.concurrency if concurrent else 1
        self.lines = (ORM, RAW) if concurrent else (ORM, RAW, RAW_BATCHED)
        self.target = Target(0.90) if concurrent else None

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
        try:
            await self.orm_call(env)
        except Exception as exc:
            return f"not available: {type(exc).__name__}: {exc}"
        return None

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        call: Callable[[Env], Awaitable[Any]] = self.orm_call if line == ORM else self.raw_call
        return per_op(count, 1, lambda i: call(env), self.budget(env))


class ByStatus(QueryCase):
    key = workload = "W3"
    title = 'status == "active", page of 50'
    target = Target(0.85, round_trips=2, commands=1.2)

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(where={"status": "active"}, take=env.settings.page)

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.users_with_status("active", env.settings.page)


class AgeRange(QueryCase):
    key = workload = "W4"
    title = "20 <= age < 30 by age, first 50"
    target = Target(0.85, round_trips=2, commands=1.2)

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(
            where={"age": {"gte": 20, "lt": 30}}, order_by={"age": "asc"}, take=env.settings.page
        )

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.users_by_age(20, 30, env.settings.page)


class ByStatusExpression(ByStatus):
    """W3 written with field expressions: the same query model, so the same plan and cost."""

    key = "W3-expr"
    title = 'User.status == "active", page of 50'

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(User.status == "active", take=env.settings.page)


class AgeRangeExpression(AgeRange):
    key = "W4-expr"
    title = "User.age >= 20, User.age < 30 by asc(User.age), first 50"

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(
            User.age >= 20, User.age < 30, order_by=asc(User.age), take=env.settings.page
        )


def author_of(post: Any) -> Any:
    """The author the ORM loaded onto a post."""
    return getattr(post, "author", None)


class PostsWithAuthors(QueryCase):
    key = workload = "W5"
    title = "1,000 posts with their authors"

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.posts.find_many(take=env.settings.posts_take, include={"author": True})

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.posts_with_authors(env.settings.posts_take)

    def digest(self, first: Any) -> Any:
        if first and isinstance(first[0], Post):
            first = [(post, author_of(post)) for post in first]
        return [(comparable(post, skip=("author",)), comparable(author)) for post, author in first]


class AuthorsWithFirstPosts(QueryCase):
    """W5's relation the other way round, paged per parent: each of 100 users with its first 3
    posts. The ORM reads each author's window of its post index (one pipeline of read scripts),
    so its server commands do not grow with the posts it leaves out."""

    key = "W5-take3"
    workload = "W5"
    title = "100 users, each with its first 3 posts"

    def orm_call(self, env: Env) -> Awaitable[Any]:
        return env.users.find_many(take=env.settings.authors_take, include={"posts": {"take": 3}})

    def raw_call(self, env: Env) -> Awaitable[Any]:
        return env.raw.authors_with_posts(env.settings.authors_take, 3)

    def digest(self, first: Any) -> Any:
        if first and isinstance(first[0], User):
            first = [(user, user.posts) for user in first]
        return [(comparable(user), [comparable(post) for post in posts]) for user, posts in first]


class UpdateStatus(Case):
    key = workload = "W6"
    title = "update indexed status by id"
    lines = (ORM, RAW, RAW_WATCH, RAW_BATCHED)
    target = Target(0.65, round_trips=1)
    ignore = ("status",)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        chosen = env.user_ids[:count]
        status = f"st{env.run_no}"
        if line == RAW_BATCHED:
            return batched(
                count, env.settings.batch, lambda s, n: env.raw.set_status_batch(chosen[s : s + n], status)
            )
        if line == ORM:
            return per_op(count, 1, lambda i: env.users.update({"id": chosen[i]}, {"status": status}))
        store = env.raw if line == RAW else env.watch
        return per_op(count, 1, lambda i: store.set_status(chosen[i], status))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        first, second, third = env.user_ids[:3]
        await env.watch.set_status(first, "bychecka")
        seen = await env.raw.get_user(first)
        check(problems, seen is not None and seen.status == "bychecka", "raw missed a raw-watch update")
        updated = await env.raw.set_status(second, "bycheckb")
        check(problems, updated is not None and updated.status == "bycheckb", "raw's update returned nothing")
        missing = await env.users.update({"id": "missing"}, {"status": "x"})
        check(problems, missing is None, "the ORM updated a missing record")
        check(problems, await env.raw.set_status("missing", "x") is None, "raw updated a missing record")
        check(problems, await env.watch.set_status("missing", "x") is None, "raw-watch updated a missing id")
        await env.monitor.script_flush()
        after = await env.raw.set_status(third, "afterflush")
        check(problems, after is not None and after.status == "afterflush", "raw failed after SCRIPT FLUSH")
        done = await env.users.update({"id": third}, {"status": "afterflush"})
        check(problems, done is not None, "the ORM failed after SCRIPT FLUSH")
        return problems + await audit(env, User) + await raw_audit(env)


async def fresh_users(env: Env, line: str, rep: int, count: int, name: str) -> list[str]:
    """Create users to be deleted, outside the timer, in the line's own layout."""
    data = users_data(rep, f"{name}r{env.run_no}", count)
    if line == ORM:
        return [user.id for user in await env.users.create_many(data)]
    return [user.id for user in await env.raw.create_users(data, env.settings.bulk_chunk)]


class Delete(Case):
    key = workload = "W7"
    title = "delete by id"
    lines = (ORM, RAW, RAW_WATCH, RAW_BATCHED)
    target = Target(0.65, round_trips=1)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        chosen = await fresh_users(env, line, rep, count, "wd")
        if line == RAW_BATCHED:
            return batched(count, env.settings.batch, lambda s, n: env.raw.delete_users(chosen[s : s + n]))
        delete: Callable[[str], Awaitable[Any]] = {
            ORM: lambda i: env.users.delete({"id": i}),
            RAW: env.raw.delete_user,
            RAW_WATCH: env.watch.delete_user,
        }[line]
        return per_op(count, 1, lambda i: delete(chosen[i]))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        problems: list[str] = []
        env.run_no += 1
        (first,) = await fresh_users(env, ORM, 0, 1, "wv")
        check(problems, await env.users.delete({"id": first}) is not None, "the ORM did not delete")
        check(problems, await env.users.find_unique({"id": first}) is None, "the ORM still sees its delete")
        check(problems, await env.users.delete({"id": first}) is None, "the ORM deleted twice")
        env.run_no += 1
        a, b = await fresh_users(env, RAW, 0, 2, "wv")
        check(problems, await env.watch.delete_user(a) is not None, "raw-watch did not delete a raw record")
        check(problems, await env.raw.delete_user(a) is None, "raw deleted a record raw-watch deleted")
        check(problems, await env.raw.delete_user(b) is not None, "raw did not delete")
        check(problems, await env.watch.delete_user(b) is None, "raw-watch deleted a record raw deleted")
        check(problems, await env.raw.get_user(b) is None, "raw still sees its delete")
        return problems + await audit(env, User) + await raw_audit(env)


class CreateMany(Case):
    key = workload = "W8"
    title = "create_many of 10,000"
    lines = (ORM, RAW_BATCHED, RAW_WATCH)
    target = Target(0.80, baseline=RAW_BATCHED)

    async def timed(self, env: Env, line: str, rep: int, count: int) -> Timed:
        await env.monitor.flushdb()
        inputs = users_data(rep, tag(env, line, "wm"), count)
        if line == ORM:
            return whole(count, lambda: env.users.create_many(inputs))
        if line == RAW_BATCHED:
            return whole(count, lambda: env.raw.create_users(inputs, env.settings.bulk_chunk))
        return whole(count, lambda: env.watch.create_users(inputs, env.settings.create_many_chunk))

    async def verify(self, env: Env, outcomes: dict[str, list[Outcome]]) -> list[str]:
        """Each run emptied the database first, so the lines write again here, to be counted."""
        problems: list[str] = []
        await env.monitor.flushdb()
        count = self.ops(env)
        made = await env.users.create_many(fresh(env, "wc", count))
        check(problems, await env.users.count() == count, f"the ORM counts not {count} after create_many")
        duplicate = {**fresh(env, "wc")[0], "email": made[-1].email}
        check(problems, await refused(env.users.create_many([fresh(env, "wc")[0], duplicate])), "ORM: dup")
        check(problems, await env.users.count() == count, "the ORM wrote part of a refused create_many chunk")
        chunks = {RAW_BATCHED: env.settings.bulk_chunk, RAW_WATCH: env.settings.create_many_chunk}
        for number, (line, chunk) in enumerate(chunks.items(), start=1):
            store = env.raw if line == RAW_BATCHED else env.watch
            made_raw = await store.create_users(fresh(env, "wc", count), chunk)
            duplicate = {**fresh(env, "wc")[0], "email": made_raw[-1].email}
            check(problems, await refused(store.create_users([fresh(env, "wc")[0], duplicate], chunk)), line)
            seen = await env.raw.count_users()
            check(problems, seen == number * count, f"{line}: {seen} users, not {number * count}")
        return problems + await audit(env, User) + await raw_audit(env)


def disagreements(case: Case, outcomes: dict[str, list[Outcome]], ops: int) -> list[str]:
    """Every run did all its operations, and every line's first result matches the ORM's."""
    problems: list[str] = []
    for line, runs in outcomes.items():
        for rep, outcome in enumerate(runs):
            performed = (ops if outcome.ops is None else outcome.ops) - outcome.gave_up
            if outcome.done != performed:
                problems.append(f"{line} run {rep}: {outcome.done} of {performed} operations gave a result")
    reference: Sequence[Outcome] = outcomes[ORM]
    for line in case.lines[1:]:
        for rep, (mine, theirs) in enumerate(zip(reference, outcomes[line], strict=True)):
            if case.digest(mine.first) != case.digest(theirs.first):
                problems.append(f"{line} run {rep}: first result differs from the ORM's")
    return problems


def user_cases(settings: Settings) -> list[Case]:
    """In run order: the reads see the freshly seeded data; W8 empties the database each run."""
    return [
        GetById(False, settings),
        GetById(True, settings),
        ByStatus(),
        ByStatusExpression(),
        AgeRange(),
        AgeRangeExpression(),
        PostsWithAuthors(),
        AuthorsWithFirstPosts(),
        UpdateStatus(),
        Delete(),
        Create(False, settings),
        Create(True, settings),
        CreateMany(),
    ]
