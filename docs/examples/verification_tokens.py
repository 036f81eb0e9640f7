"""Email verification tokens: single use, consumed atomically, rejected once expired."""

from __future__ import annotations

import secrets
from datetime import timedelta

from redis_orm_async import UNSET, Field, Model, Orm


class VerificationToken(Model, key_prefix="verify", ttl=timedelta(hours=24)):
    code: str = Field(unique=True)
    email: str


async def issue(orm: Orm, email: str, ttl: timedelta | None = None) -> str:
    code = secrets.token_urlsafe(16)
    await orm.repo(VerificationToken).create(data={"code": code, "email": email}, ttl=ttl or UNSET)
    return code


async def consume(orm: Orm, code: str) -> str | None:
    """The verified email, exactly once per token; None if unknown, used or expired."""
    token = await orm.repo(VerificationToken).delete(where={"code": code})
    return None if token is None else token.email
