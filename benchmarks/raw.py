"""The raw line: hand-written ``redis.asyncio`` (hiredis) code doing the ORM's work with its guarantees.

It writes to the ORM's own key layout (see ``redis_orm_async/_keys.py``) so that both lines do
comparable work and the ORM's audit can check what the raw line wrote. It sends the fewest
commands a careful hand-written version needs:

- a create is ``WATCH claim`` + ``GET claim`` in one round trip, then one MULTI/EXEC with the
  hash, the equality and range index entries, the id-set entry and the unique claim;
- an update or delete is ``WATCH record`` + ``HGETALL record``, then one MULTI/EXEC that moves
  or removes the index entries the old values imply;
- a page is the ids from one index in one round trip, then the hashes in one pipeline.

Unlike the ORM it knows that these models never expire, so it never reads the expiry index. The
``*_batch`` methods are the raw-batched line: 100 operations share each round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection

from .models import RawPost, RawUser

Command = tuple[str | int | float, ...]

USER = "{user}"
USER_IDS = USER + ":ids"
USER_AGE = USER + ":z:age"
POST = "{post}"
POST_IDS = POST + ":ids"
MAX_ATTEMPTS = 64


def user_key(user_id: str) -> str:
    return f"{USER}:r:{user_id}"


def status_key(status: str) -> str:
    return f"{USER}:i:status:={status}"


def email_claim(email: str) -> str:
    return f"{USER}:u:email:={email}"


def post_key(post_id: str) -> str:
    return f"{POST}:r:{post_id}"


class DuplicateError(Exception):
    """A unique value (or id) is already held by a live record."""


class ConflictError(Exception):
    """Concurrent writers kept changing the watched keys."""


class RawRedis:
    """A connection pool plus the count of round trips and commands it sent."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._pool = client.connection_pool
        self.round_trips = 0
        self.commands = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AbstractConnection]:
        connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            yield connection
        except BaseException:
            await connection.disconnect()  # replies may be unread, or a WATCH still open
            raise
        finally:
            await self._pool.release(connection)

    async def exchange(self, connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
        """Send every command at once and read every reply: one round trip."""
        self.round_trips += 1
        self.commands += len(commands)
        await connection.send_packed_command(connection.pack_commands(commands))
        return [await connection.read_response() for _ in commands]


def _user_hash(user: RawUser) -> Command:
    return (
        "HSET", user_key(user.id),
        "id", user.id, "email", user.email, "name", user.name, "age", str(user.age),
        "status", user.status,
    )  # fmt: skip


def _create_commands(user: RawUser) -> list[Command]:
    return [
        _user_hash(user),
        ("ZADD", status_key(user.status), 0, user.id),
        ("ZADD", USER_IDS, 0, user.id),
        ("ZADD", USER_AGE, user.age, user.id),
        ("SET", email_claim(user.email), user.id),
    ]


def _delete_commands(user: RawUser) -> list[Command]:
    return [
        ("DEL", user_key(user.id)),
        ("ZREM", status_key(user.status), user.id),
        ("ZREM", USER_IDS, user.id),
        ("ZREM", USER_AGE, user.id),
        ("DEL", email_claim(user.email)),
    ]


def _status_commands(old: RawUser, new: RawUser) -> list[Command]:
    if old.status == new.status:
        return []
    return [
        ("HSET", user_key(new.id), "status", new.status),
        ("ZREM", status_key(old.status), new.id),
        ("ZADD", status_key(new.status), 0, new.id),
    ]


class RawStore:
    """User and Post operations written by hand, one method per benchmarked operation."""

    def __init__(self, redis: RawRedis) -> None:
        self.redis = redis

    async def _claims_free(
        self, connection: AbstractConnection, users: Sequence[RawUser], holders: Sequence[str | None]
    ) -> None:
        """Raise unless every held claim belongs to a record that is gone (a stale claim).

        Runs under the caller's WATCH; the holders' records are watched too before they are read.
        """
        taken = [(user, holder) for user, holder in zip(users, holders, strict=True) if holder]
        if not taken:
            return
        keys = [user_key(holder) for _, holder in taken]
        replies = await self.redis.exchange(connection, [("WATCH", *keys), ("EXISTS", *keys)])
        if replies[1]:
            await self.redis.exchange(connection, [("UNWATCH",)])
            raise DuplicateError(f"email already taken: {taken[0][0].email}")

    async def _create(self, users: Sequence[RawUser]) -> None:
        claims = [email_claim(user.email) for user in users]
        writes: list[Command] = [("MULTI",)]
        for user in users:
            writes.extend(_create_commands(user))
        writes.append(("EXEC",))
        async with self.redis.connection() as connection:
            for _ in range(MAX_ATTEMPTS):
                replies = await self.redis.exchange(connection, [("WATCH", *claims), ("MGET", *claims)])
                await self._claims_free(connection, users, replies[1])
                replies = await self.redis.exchange(connection, writes)
                if replies[-1] is not None:
                    return
        raise ConflictError("create kept conflicting")

    async def create_user(self, data: Mapping[str, Any]) -> RawUser:
        user = RawUser.model_validate(data)
        await self._create([user])
        return user

    async def create_users(self, data: Sequence[Mapping[str, Any]], chunk: int) -> list[RawUser]:
        """Validate all, refuse duplicates within the batch, then one guarded MULTI/EXEC per chunk."""
        users = [RawUser.model_validate(item) for item in data]
        if len({user.email for user in users}) != len(users) or len({u.id for u in users}) != len(users):
            raise DuplicateError("the batch repeats an email or an id")
        for start in range(0, len(users), chunk):
            await self._create(users[start : start + chunk])
        return users

    async def get_user(self, user_id: str) -> RawUser | None:
        async with self.redis.connection() as connection:
            (stored,) = await self.redis.exchange(connection, [("HGETALL", user_key(user_id))])
        return RawUser.model_validate(stored) if stored else None

    async def get_users(self, user_ids: Sequence[str]) -> list[RawUser | None]:
        async with self.redis.connection() as connection:
            replies = await self.redis.exchange(connection, [("HGETALL", user_key(i)) for i in user_ids])
        return [RawUser.model_validate(stored) if stored else None for stored in replies]

    async def _change(self, user_ids: Sequence[str], status: str | None) -> list[RawUser | None]:
        """Set ``status`` on (or, with None, delete) each user, in one guarded MULTI/EXEC."""
        keys = [user_key(user_id) for user_id in user_ids]
        async with self.redis.connection() as connection:
            for _ in range(MAX_ATTEMPTS):
                replies = await self.redis.exchange(
                    connection, [("WATCH", *keys), *(("HGETALL", key) for key in keys)]
                )
                results: list[RawUser | None] = []
                writes: list[Command] = []
                for stored in replies[1:]:
                    if not stored:
                        results.append(None)
                        continue
                    old = RawUser.model_validate(stored)
                    if status is None:
                        writes.extend(_delete_commands(old))
                        results.append(old)
                    else:
                        new = RawUser.model_validate({**stored, "status": status})
                        writes.extend(_status_commands(old, new))
                        results.append(new)
                if not writes:
                    await self.redis.exchange(connection, [("UNWATCH",)])
                    return results
                replies = await self.redis.exchange(connection, [("MULTI",), *writes, ("EXEC",)])
                if replies[-1] is not None:
                    return results
        raise ConflictError("update kept conflicting")

    async def set_status(self, user_id: str, status: str) -> RawUser | None:
        return (await self._change([user_id], status))[0]

    async def set_status_batch(self, user_ids: Sequence[str], status: str) -> list[RawUser | None]:
        return await self._change(user_ids, status)

    async def delete_user(self, user_id: str) -> RawUser | None:
        return (await self._change([user_id], None))[0]

    async def delete_users(self, user_ids: Sequence[str]) -> list[RawUser | None]:
        return await self._change(user_ids, None)

    async def users_with_status(self, status: str, take: int) -> list[RawUser]:
        """A page of ``take`` users in id order, the ORM's default order."""
        async with self.redis.connection() as connection:
            (ids,) = await self.redis.exchange(
                connection, [("ZRANGE", status_key(status), 0, take - 1)]
            )
            replies = await self.redis.exchange(connection, [("HGETALL", user_key(i)) for i in ids])
        return [RawUser.model_validate(stored) for stored in replies if stored]

    async def users_by_age(self, low: int, high: int, take: int) -> list[RawUser]:
        """``low <= age < high`` by age (ties by id, as the ZSET orders them), first ``take``."""
        async with self.redis.connection() as connection:
            (ids,) = await self.redis.exchange(
                connection, [("ZRANGEBYSCORE", USER_AGE, low, f"({high}", "LIMIT", 0, take)]
            )
            replies = await self.redis.exchange(connection, [("HGETALL", user_key(i)) for i in ids])
        return [RawUser.model_validate(stored) for stored in replies if stored]

    async def posts_with_authors(self, take: int) -> list[tuple[RawPost, RawUser | None]]:
        """The first ``take`` posts in id order, each with its author: three round trips in all."""
        async with self.redis.connection() as connection:
            (ids,) = await self.redis.exchange(connection, [("ZRANGE", POST_IDS, 0, take - 1)])
            stored_posts = await self.redis.exchange(connection, [("HGETALL", post_key(i)) for i in ids])
            posts = [RawPost.model_validate(stored) for stored in stored_posts if stored]
            author_ids = list(dict.fromkeys(post.author_id for post in posts))
            stored_authors = await self.redis.exchange(
                connection, [("HGETALL", user_key(i)) for i in author_ids]
            )
        authors = {
            author_id: RawUser.model_validate(stored)
            for author_id, stored in zip(author_ids, stored_authors, strict=True)
            if stored
        }
        return [(post, authors.get(post.author_id)) for post in posts]
