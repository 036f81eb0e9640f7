"""Login sessions: created with a TTL, refreshed on use, found by token, revoked per user."""

from __future__ import annotations

import secrets
from datetime import timedelta

from redis_orm_async import UNSET, Field, Model, Orm


class LoginSession(Model, key_prefix="session", ttl=timedelta(minutes=30), max_life=timedelta(days=7)):
    token: str = Field(unique=True)
    user_id: str = Field(index=True)
    device: str = ""


async def login(orm: Orm, user_id: str, device: str, ttl: timedelta | None = None) -> str:
    token = secrets.token_urlsafe(24)
    data = {"token": token, "user_id": user_id, "device": device}
    await orm.repo(LoginSession).create(data=data, ttl=ttl or UNSET)
    return token


async def authenticate(orm: Orm, token: str, ttl: timedelta | None = None) -> str | None:
    """The session's user id, sliding the session's expiry forward; None if unknown or expired."""
    session = await orm.repo(LoginSession).touch(where={"token": token}, ttl=ttl)
    return None if session is None else session.user_id


async def logout_everywhere(orm: Orm, user_id: str) -> int:
    return await orm.repo(LoginSession).delete_many(where={"user_id": user_id})
