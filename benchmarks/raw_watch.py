"""The raw-watch line: hand-written optimistic WATCH/MULTI/EXEC code on the raw line's layout.

It is the second reference, what careful redis-py code without scripts looks like: read under
``WATCH`` in one round trip, then apply every change in one MULTI/EXEC, and start again (after a
short random pause) when another writer touched a watched key. It keeps the same guarantees as
the Lua line and writes the same keys, so the two lines read each other's records:

- create: ``WATCH claim`` + ``GET claim``; when the claim is held, ``WATCH`` + ``EXISTS`` of the
  holder's record (a claim whose record is gone is taken over); then ``MULTI``, ``HSET``, three
  ``ZADD``, ``SET`` claim, ``EXEC``: 9 commands and 2 round trips when the email is free;
- update of ``status``: ``WATCH`` + ``HGETALL``, then ``MULTI``, ``HSET``, ``ZREM``, ``ZADD``,
  ``EXEC``; delete: ``WATCH`` + ``HGETALL``, then ``MULTI``, ``DEL``, three ``ZREM``, ``DEL``
  claim, ``EXEC``;
- touch: ``WATCH`` + ``HGETALL`` + ``TIME``, then ``MULTI``, two ``PEXPIREAT`` (record and token
  claim at the same millisecond), ``ZADD`` of the expiry entry, ``EXEC``;
- bulk create: the create's two round trips for a whole chunk.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from redis.asyncio.connection import AbstractConnection

from .models import RawSession, RawUser
from .raw import (
    SESSION,
    SESSION_EXP,
    USER_AGE,
    USER_IDS,
    ConflictError,
    DuplicateError,
    RawStore,
    email_claim,
    session_key,
    status_key,
    token_claim,
    unique_batch,
    user_key,
)
from .rawio import Command, RawRedis

MAX_ATTEMPTS = 64


async def backoff(attempt: int) -> None:
    """A short random pause after a conflict, growing with the attempts, so writers spread out."""
    await anyio.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))


def _create_commands(user: RawUser) -> list[Command]:
    return [
        ("HSET", user_key(user.id),
         "id", user.id, "email", user.email, "name", user.name, "age", user.age, "status", user.status),
        ("ZADD", USER_IDS, 0, user.id),
        ("ZADD", status_key(user.status), 0, user.id),
        ("ZADD", USER_AGE, user.age, user.id),
        ("SET", email_claim(user.email), user.id),
    ]  # fmt: skip


def _delete_commands(user: RawUser) -> list[Command]:
    return [
        ("DEL", user_key(user.id)),
        ("ZREM", USER_IDS, user.id),
        ("ZREM", status_key(user.status), user.id),
        ("ZREM", USER_AGE, user.id),
        ("DEL", email_claim(user.email)),
    ]


class WatchStore:
    """User and session writes with WATCH/MULTI/EXEC; reads are the Lua line's (they need no guard)."""

    def __init__(self, redis: RawRedis, reads: RawStore) -> None:
        self.redis = redis
        self.reads = reads

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
        replies = await self.redis.checked(connection, [("WATCH", *keys), ("EXISTS", *keys)])
        if replies[1]:
            await self.redis.checked(connection, [("UNWATCH",)])
            raise DuplicateError(f"email already taken: {taken[0][0].email}")

    async def _create(self, connection: AbstractConnection, users: Sequence[RawUser]) -> None:
        claims = [email_claim(user.email) for user in users]
        writes: list[Command] = [("MULTI",)]
        for user in users:
            writes.extend(_create_commands(user))
        writes.append(("EXEC",))
        for attempt in range(MAX_ATTEMPTS):
            replies = await self.redis.checked(connection, [("WATCH", *claims), ("MGET", *claims)])
            await self._claims_free(connection, users, replies[1])
            replies = await self.redis.checked(connection, writes)
            if replies[-1] is not None:
                return
            await backoff(attempt)
        raise ConflictError("create kept conflicting")

    async def create_user(self, data: Mapping[str, Any]) -> RawUser:
        user = RawUser.model_validate(data)
        async with self.redis.connection() as connection:
            await self._create(connection, [user])
        return user

    async def create_users(self, data: Sequence[Mapping[str, Any]], chunk: int) -> list[RawUser]:
        """Validate all, refuse repeats within the batch, then one guarded MULTI/EXEC per chunk."""
        users = [RawUser.model_validate(item) for item in data]
        unique_batch([u.id for u in users], [u.email for u in users])
        async with self.redis.connection() as connection:
            for start in range(0, len(users), chunk):
                await self._create(connection, users[start : start + chunk])
        return users

    async def _change(self, user_id: str, status: str | None) -> RawUser | None:
        """Set ``status`` on (or, with None, delete) one user, in one guarded MULTI/EXEC."""
        key = user_key(user_id)
        async with self.redis.connection() as connection:
            for attempt in range(MAX_ATTEMPTS):
                _, stored = await self.redis.checked(connection, [("WATCH", key), ("HGETALL", key)])
                if not stored:
                    await self.redis.checked(connection, [("UNWATCH",)])
                    return None
                old = RawUser.model_validate(stored)
                if status is None:
                    result, writes = old, _delete_commands(old)
                else:
                    result = RawUser.model_validate({**stored, "status": status})
                    writes = [] if old.status == status else [
                        ("HSET", key, "status", status),
                        ("ZREM", status_key(old.status), user_id),
                        ("ZADD", status_key(status), 0, user_id),
                    ]  # fmt: skip
                if not writes:
                    await self.redis.checked(connection, [("UNWATCH",)])
                    return result
                replies = await self.redis.checked(connection, [("MULTI",), *writes, ("EXEC",)])
                if replies[-1] is not None:
                    return result
                await backoff(attempt)
        raise ConflictError("update kept conflicting")

    async def set_status(self, user_id: str, status: str) -> RawUser | None:
        return await self._change(user_id, status)

    async def delete_user(self, user_id: str) -> RawUser | None:
        return await self._change(user_id, None)

    async def touch_session(self, session_id: str, ttl_ms: int) -> RawSession | None:
        key = session_key(session_id)
        async with self.redis.connection() as connection:
            for attempt in range(MAX_ATTEMPTS):
                _, stored, (seconds, micros) = await self.redis.checked(
                    connection, [("WATCH", key), ("HGETALL", key), ("TIME",)]
                )
                if not stored:
                    await self.redis.checked(connection, [("UNWATCH",)])
                    return None
                session = RawSession.model_validate(stored)
                at = int(seconds) * 1000 + int(micros) // 1000 + ttl_ms
                replies = await self.redis.checked(
                    connection,
                    [
                        ("MULTI",),
                        ("PEXPIREAT", key, at),
                        ("PEXPIREAT", token_claim(session.token), at),
                        ("ZADD", SESSION_EXP, at, session.id),
                        ("EXEC",),
                    ],
                )
                if replies[-1] is not None:
                    return session
                await backoff(attempt)
        raise ConflictError(f"touch of {SESSION} kept conflicting")
