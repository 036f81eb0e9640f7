"""The tutorial's app: a bookmarks service with users, their bookmarks and login sessions.

Every excerpt of docs/tutorial.md comes from this file, and tests/test_docs.py runs ``main``
against a real server.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import redis.asyncio

from redis_orm_async import (
    BelongsTo,
    Field,
    HasMany,
    Model,
    NotFoundError,
    Orm,
    Schema,
    UniqueConstraintError,
    belongs_to,
    create_orm,
    has_many,
)


class Account(Model, key_prefix="acct"):
    email: str = Field(unique=True)  # one claim key per email: two accounts never share one
    name: str
    plan: str = Field("free", index=True)  # an equality index: find every "pro" account
    bookmarks: ClassVar[HasMany[Bookmark]] = has_many("Bookmark", foreign_key="account_id")


class Bookmark(Model, key_prefix="bm"):
    account_id: str  # indexed for you: Account.bookmarks looks bookmarks up by it
    url: str
    title: str = Field(lex=True)  # a lex index: startswith and text order, from Redis
    stars: int = Field(0, index=True)  # a range index: gt/lt and order by stars
    saved: datetime = Field(default_factory=lambda: datetime.now(UTC), index=True)
    account: ClassVar[BelongsTo[Account]] = belongs_to(Account, foreign_key="account_id")


class LoginSession(Model, key_prefix="login", ttl=timedelta(hours=12)):
    token: str = Field(unique=True, default_factory=lambda: secrets.token_urlsafe(24))
    account_id: str = Field(index=True)


schema = Schema([Account, Bookmark, LoginSession])


async def sign_up(orm: Orm, email: str, name: str) -> Account | None:
    try:
        return await orm.repo(Account).create(data={"email": email, "name": name})
    except UniqueConstraintError:
        return None  # the email is taken: the create wrote nothing at all


async def log_in(orm: Orm, email: str) -> str:
    account = await orm.repo(Account).find_unique_or_raise(where={"email": email})
    session = await orm.repo(LoginSession).create(data={"account_id": account.id})
    return session.token  # the session, and its token's claim, expire in 12 hours


async def current_account(orm: Orm, token: str) -> Account:
    session = await orm.repo(LoginSession).touch(where={"token": token})  # slides the 12 hours
    if session is None:
        raise NotFoundError("not logged in")
    return await orm.repo(Account).find_unique_or_raise(where={"id": session.account_id})


async def save(orm: Orm, account: Account, url: str, title: str) -> Bookmark:
    return await orm.repo(Bookmark).create(data={"account_id": account.id, "url": url, "title": title})


async def star(orm: Orm, bookmark_id: str) -> int:
    starred = await orm.repo(Bookmark).update(where={"id": bookmark_id}, data={"stars": {"increment": 1}})
    return 0 if starred is None else starred.stars  # the increment runs on the server: exact


async def best(orm: Orm, account: Account, prefix: str = "") -> list[Bookmark]:
    return await orm.repo(Bookmark).find_many(
        where={"account_id": account.id, "stars": {"gte": 1}, "title": {"startswith": prefix}},
        order_by={"stars": "desc"},
        take=10,
    )


async def with_bookmarks(orm: Orm, plan: str) -> list[Account]:
    return await orm.repo(Account).find_many(
        where={"plan": plan},
        include={"bookmarks": {"order_by": {"saved": "desc"}, "take": 3}},  # one batched read
    )


async def log_out_everywhere(orm: Orm, account: Account) -> int:
    return await orm.repo(LoginSession).delete_many(where={"account_id": account.id})


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url)  # the ORM uses your client; closing it is yours
    orm = create_orm(schema, client)
    ada = await sign_up(orm, "ada@example.com", "Ada")
    assert ada is not None
    again = await sign_up(orm, "ada@example.com", "Someone else")
    token = await log_in(orm, "ada@example.com")
    me = await current_account(orm, token)
    docs = await save(orm, me, "https://docs.python.org", "Python docs")
    await save(orm, me, "https://redis.io", "Redis")
    await save(orm, me, "https://pydantic.dev", "Pydantic")
    for _ in range(3):
        await star(orm, docs.id)
    first = await best(orm, me)
    p_only = await best(orm, me, prefix="Py")
    accounts = await with_bookmarks(orm, "free")
    loaded = [b.title for b in accounts[0].bookmarks]
    owner = await orm.repo(Bookmark).find_unique(where={"id": docs.id}, include={"account": True})
    gone = await log_out_everywhere(orm, me)
    try:
        await current_account(orm, token)
        logged_in = True
    except NotFoundError:
        logged_in = False
    result: dict[str, object] = {
        "duplicate": again,
        "same": me == ada,
        "best": [(b.title, b.stars) for b in first],
        "py": [b.title for b in p_only],
        "loaded": loaded,
        "owner": None if owner is None else owner.account.name,
        "sessions_closed": gone,
        "logged_in": logged_in,
        "audit": all([(await orm.audit(model)).ok for model in schema.models]),
    }
    await client.aclose()
    return result
