"""The raw line: the fastest *correct* hand-written ``redis.asyncio`` code for each workload.

It keeps its own natural key layout, on its own key prefixes, and owes nothing to the ORM's:

- ``{rawuser}:r:<id>`` HASH per user; ``{rawuser}:ids`` ZSET of ids (score 0, so members come
  back in id order); ``{rawuser}:s:<status>`` ZSET per status, scored the same way (an equality
  page is a ``ZRANGE``); ``{rawuser}:age`` ZSET scored by age; ``{rawuser}:e:<email>`` the unique
  claim, a STRING holding the id;
- ``{rawpost}:r:<id>``, ``{rawpost}:ids`` and ``{rawpost}:a:<author id>`` for posts;
- ``{rawsess}:r:<id>``, ``:ids``, ``:s:<status>``, ``:u:<user id>``, ``:t:<token>`` (the claim,
  with the record's ``PXAT``), ``:exp``, a ZSET of ids scored by expiry time in ms, and ``:st``,
  a HASH of id to the index facts the sweep needs once Redis has dropped the record;
- ``rawrate:<name>:<key>``, a rate-limit counter (a STRING) that lives for one window.

A key's namespace letter comes before any value, so no value can collide with another kind of key
and nothing needs escaping. Every write is one ``EVALSHA`` (``benchmarks/lua/``): it reads what
it must, checks a unique claim against the record it points to (a claim whose record expired or
vanished is taken over), and changes the record, its index entries and its claims atomically, so
there are no lost updates, no second holder of a unique value and no stale index entry. Reads are
the index range and one pipeline of ``HGETALL``; a record that expired or vanished is skipped and
the page is filled from the next window. Users and posts never expire here, so their writes keep
no expiry entries; sessions do.

The ``*_batch`` and bulk methods are the raw-batched line: many operations share each round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from redis.asyncio.connection import AbstractConnection

from .models import RawPost, RawRateStatus, RawSession, RawUser
from .rawio import Arg, Command, RawError, RawRedis, Script, ScriptCall, pairs

USER = "{rawuser}"
USER_IDS = USER + ":ids"
USER_AGE = USER + ":age"
USER_HEAD = USER + ":r:"
STATUS_HEAD = USER + ":s:"
POST = "{rawpost}"
POST_IDS = POST + ":ids"
SESSION = "{rawsess}"
SESSION_IDS = SESSION + ":ids"
SESSION_EXP = SESSION + ":exp"
SESSION_STATE = SESSION + ":st"
TOKEN_HEAD = SESSION + ":t:"

SCRIPTS = {
    name: Script.load(name)
    for name in (
        "user_create", "user_create_many", "user_update_status", "user_delete",
        "session_create_many", "session_touch", "session_sweep", "session_touch_by_token", "rate_limit",
    )
}  # fmt: skip

R = TypeVar("R", bound=BaseModel)


def user_key(user_id: str) -> str:
    return USER_HEAD + user_id


def status_key(status: str) -> str:
    return STATUS_HEAD + status


def email_claim(email: str) -> str:
    return f"{USER}:e:{email}"


def post_key(post_id: str) -> str:
    return f"{POST}:r:{post_id}"


def author_key(author_id: str) -> str:
    return f"{POST}:a:{author_id}"


def session_key(session_id: str) -> str:
    return f"{SESSION}:r:{session_id}"


def session_status_key(status: str) -> str:
    return f"{SESSION}:s:{status}"


def token_claim(token: str) -> str:
    return TOKEN_HEAD + token


def rate_key(name: str, key: str) -> str:
    return f"rawrate:{name}:{key}"


class DuplicateError(RawError):
    """A unique value is already held by a live record."""


class ConflictError(RawError):
    """Concurrent writers kept changing the watched keys (a failed EXEC leaves no WATCH)."""


def unique_batch(ids: Sequence[str], values: Sequence[str]) -> None:
    """Refuse a batch that repeats a unique value or an id, before any I/O (as the ORM does)."""
    if len(set(values)) != len(values) or len(set(ids)) != len(ids):
        raise DuplicateError("the batch repeats a unique value or an id")


def _user_args(user: RawUser) -> list[Arg]:
    return [user.id, user.email, user.name, user.age, user.status]


def _updated(reply: list[Any], status: str) -> RawUser | None:
    if not reply:
        return None
    return RawUser.model_validate({**pairs(reply), "status": status})


def _deleted(reply: list[Any]) -> RawUser | None:
    return RawUser.model_validate(pairs(reply)) if reply else None


class RawStore:
    """The Lua line (and the raw-batched line), one method per benchmarked operation."""

    def __init__(self, redis: RawRedis) -> None:
        self.redis = redis

    async def load_scripts(self) -> None:
        async with self.redis.connection() as connection:
            await self.redis.load(connection, SCRIPTS.values())

    async def _run(self, calls: Sequence[ScriptCall]) -> list[Any]:
        async with self.redis.connection() as connection:
            return await self.redis.run(connection, calls)

    # Users: W1, W6, W7, W8 (writes) and W2, W3, W4 (reads).

    async def create_user(self, data: Mapping[str, Any]) -> RawUser:
        user = RawUser.model_validate(data)
        keys = (user_key(user.id), email_claim(user.email), USER_IDS, status_key(user.status), USER_AGE)
        (created,) = await self._run([(SCRIPTS["user_create"], keys, [USER_HEAD, *_user_args(user)])])
        if not created:
            raise DuplicateError(f"email already taken: {user.email}")
        return user

    async def create_users(self, data: Sequence[Mapping[str, Any]], chunk: int) -> list[RawUser]:
        """Validate all, refuse repeats within the batch, then one all-or-nothing script per chunk."""
        users = [RawUser.model_validate(item) for item in data]
        unique_batch([u.id for u in users], [u.email for u in users])
        script = SCRIPTS["user_create_many"]
        async with self.redis.connection() as connection:
            for start in range(0, len(users), chunk):
                args: list[Arg] = [USER]
                for user in users[start : start + chunk]:
                    args.extend(_user_args(user))
                (refused,) = await self.redis.run(connection, [(script, (USER_IDS, USER_AGE), args)])
                if refused:
                    raise DuplicateError(f"email already taken: {users[start + refused - 1].email}")
        return users

    async def get_user(self, user_id: str) -> RawUser | None:
        async with self.redis.connection() as connection:
            (stored,) = await self.redis.checked(connection, [("HGETALL", user_key(user_id))])
        return RawUser.model_validate(stored) if stored else None

    async def get_users(self, user_ids: Sequence[str]) -> list[RawUser | None]:
        async with self.redis.connection() as connection:
            replies = await self.redis.checked(connection, [("HGETALL", user_key(i)) for i in user_ids])
        return [RawUser.model_validate(stored) if stored else None for stored in replies]

    def _status_call(self, user_id: str, status: str) -> ScriptCall:
        keys = (user_key(user_id), status_key(status))
        return SCRIPTS["user_update_status"], keys, (STATUS_HEAD, user_id, status)

    async def set_status(self, user_id: str, status: str) -> RawUser | None:
        (old,) = await self._run([self._status_call(user_id, status)])
        return _updated(old, status)

    async def set_status_batch(self, user_ids: Sequence[str], status: str) -> list[RawUser | None]:
        replies = await self._run([self._status_call(user_id, status) for user_id in user_ids])
        return [_updated(old, status) for old in replies]

    def _delete_call(self, user_id: str) -> ScriptCall:
        return SCRIPTS["user_delete"], (user_key(user_id), USER_IDS, USER_AGE), (USER, user_id)

    async def delete_user(self, user_id: str) -> RawUser | None:
        (old,) = await self._run([self._delete_call(user_id)])
        return _deleted(old)

    async def delete_users(self, user_ids: Sequence[str]) -> list[RawUser | None]:
        return [_deleted(old) for old in await self._run([self._delete_call(i) for i in user_ids])]

    async def _page(
        self,
        connection: AbstractConnection,
        window: Callable[[int, int], Command],
        record_key: Callable[[str], str],
        model: type[R],
        take: int,
    ) -> list[R]:
        """Ids from one index window, then their records in one pipeline; a record that expired
        or vanished is skipped and the page is filled from the next window."""
        found: list[R] = []
        offset = 0
        while len(found) < take:
            want = take - len(found)
            (ids,) = await self.redis.checked(connection, [window(offset, want)])
            if not ids:
                break
            replies = await self.redis.checked(connection, [("HGETALL", record_key(i)) for i in ids])
            found.extend(model.model_validate(stored) for stored in replies if stored)
            if len(ids) < want:
                break
            offset += len(ids)
        return found

    async def users_with_status(self, status: str, take: int) -> list[RawUser]:
        """A page of ``take`` users in id order (the ORM's default order): ``ZRANGE`` + HGETALLs."""
        key = status_key(status)
        async with self.redis.connection() as connection:
            return await self._page(
                connection, lambda skip, n: ("ZRANGE", key, skip, skip + n - 1), user_key, RawUser, take
            )

    async def users_by_age(self, low: int, high: int, take: int) -> list[RawUser]:
        """``low <= age < high`` by age (ties by id, as the ZSET orders them), first ``take``."""
        async with self.redis.connection() as connection:
            return await self._page(
                connection,
                lambda skip, n: ("ZRANGEBYSCORE", USER_AGE, low, f"({high}", "LIMIT", skip, n),
                user_key,
                RawUser,
                take,
            )

    async def count_users(self) -> int:
        async with self.redis.connection() as connection:
            (count,) = await self.redis.checked(connection, [("ZCARD", USER_IDS)])
        return int(count)

    # Posts: W5.

    async def create_posts(self, posts: Sequence[Mapping[str, Any]]) -> None:
        """Seeding only: posts have no unique value, so one MULTI/EXEC per 500 is enough."""
        records = [RawPost.model_validate(post) for post in posts]
        async with self.redis.connection() as connection:
            for start in range(0, len(records), 500):
                commands: list[Command] = [("MULTI",)]
                for post in records[start : start + 500]:
                    commands.append(
                        ("HSET", post_key(post.id), "id", post.id, "author_id", post.author_id,
                         "title", post.title, "body", post.body)
                    )  # fmt: skip
                    commands.append(("ZADD", POST_IDS, 0, post.id))
                    commands.append(("ZADD", author_key(post.author_id), 0, post.id))
                commands.append(("EXEC",))
                await self.redis.checked(connection, commands)

    async def posts_with_authors(self, take: int) -> list[tuple[RawPost, RawUser | None]]:
        """The first ``take`` posts in id order, each with its author: three round trips in all."""
        async with self.redis.connection() as connection:
            (ids,) = await self.redis.checked(connection, [("ZRANGE", POST_IDS, 0, take - 1)])
            stored_posts = await self.redis.checked(connection, [("HGETALL", post_key(i)) for i in ids])
            posts = [RawPost.model_validate(stored) for stored in stored_posts if stored]
            author_ids = list(dict.fromkeys(post.author_id for post in posts))
            stored_authors = await self.redis.checked(
                connection, [("HGETALL", user_key(i)) for i in author_ids]
            )
        authors = {
            author_id: RawUser.model_validate(stored)
            for author_id, stored in zip(author_ids, stored_authors, strict=True)
            if stored
        }
        return [(post, authors.get(post.author_id)) for post in posts]

    async def authors_with_posts(self, take: int, per_author: int) -> list[tuple[RawUser, list[RawPost]]]:
        """The first ``take`` users in id order, each with its first ``per_author`` posts in id
        order: the users' ids, their records, one window of each one's post index, the posts."""
        async with self.redis.connection() as connection:
            (ids,) = await self.redis.checked(connection, [("ZRANGE", USER_IDS, 0, take - 1)])
            stored = await self.redis.checked(connection, [("HGETALL", user_key(i)) for i in ids])
            users = [RawUser.model_validate(record) for record in stored if record]
            windows = await self.redis.checked(
                connection, [("ZRANGE", author_key(user.id), 0, per_author - 1) for user in users]
            )
            post_ids = [i for window in windows for i in window]
            stored_posts = await self.redis.checked(connection, [("HGETALL", post_key(i)) for i in post_ids])
        posts = {i: RawPost.model_validate(record) for i, record in zip(post_ids, stored_posts, strict=True)
                 if record}  # fmt: skip
        return [
            (user, [posts[i] for i in window if i in posts])
            for user, window in zip(users, windows, strict=True)
        ]

    # Sessions: W9 and W10.

    async def create_sessions(
        self, data: Sequence[Mapping[str, Any]], ttl_ms: int, chunk: int = 500
    ) -> list[RawSession]:
        """Expiring sessions, one all-or-nothing script per chunk; each chunk expires at one time."""
        sessions = [RawSession.model_validate(item) for item in data]
        unique_batch([s.id for s in sessions], [s.token for s in sessions])
        script = SCRIPTS["session_create_many"]
        async with self.redis.connection() as connection:
            for start in range(0, len(sessions), chunk):
                args: list[Arg] = [SESSION, ttl_ms]
                for session in sessions[start : start + chunk]:
                    args.extend((session.id, session.token, session.user_id, session.status))
                keys = (SESSION_IDS, SESSION_EXP, SESSION_STATE)
                (refused,) = await self.redis.run(connection, [(script, keys, args)])
                if refused:
                    raise DuplicateError(f"token already taken: {sessions[start + refused - 1].token}")
        return sessions

    async def touch_session(self, session_id: str, ttl_ms: int) -> RawSession | None:
        keys = (session_key(session_id), SESSION_EXP)
        (stored,) = await self._run([(SCRIPTS["session_touch"], keys, (TOKEN_HEAD, ttl_ms))])
        return RawSession.model_validate(pairs(stored)) if stored else None

    async def touch_session_by_token(self, token: str, ttl_ms: int) -> RawSession | None:
        """W12: a sliding session found by its token, as a request authenticates it."""
        keys, args = (token_claim(token), SESSION_EXP), (SESSION + ":r:", ttl_ms, token)
        (stored,) = await self._run([(SCRIPTS["session_touch_by_token"], keys, args)])
        return RawSession.model_validate(pairs(stored)) if stored else None

    # Rate limits: W11.

    async def rate_limit(self, name: str, key: str, limit: int, window_ms: int) -> RawRateStatus:
        """Count one call of ``key`` in its window (opened by its first call, timed by the server)."""
        ((hits, left_ms),) = await self._run([(SCRIPTS["rate_limit"], (rate_key(name, key),), (window_ms,))])
        hits = int(hits)
        return RawRateStatus(
            allowed=hits <= limit, limit=limit, remaining=max(0, limit - hits),
            reset_after=max(0, int(left_ms)) / 1000, hits=hits,
        )  # fmt: skip

    async def sessions_with_status(self, status: str, take: int) -> list[RawSession]:
        """A page of live sessions in id order; Redis never hands back an expired record."""
        key = session_status_key(status)
        async with self.redis.connection() as connection:
            return await self._page(
                connection, lambda skip, n: ("ZRANGE", key, skip, skip + n - 1), session_key, RawSession, take
            )

    async def sweep_sessions(self, batch: int = 1000) -> int:
        """Remove the index entries of expired sessions, one atomic batch at a time."""
        swept = 0
        while True:
            ((done, examined),) = await self._run(
                [(SCRIPTS["session_sweep"], (SESSION_EXP, SESSION_IDS, SESSION_STATE), (SESSION, batch))]
            )
            swept += int(done)
            if int(examined) < batch:
                return swept
