"""The demo scenario: users, login sessions and verification tokens, narrated as it runs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from ._errors import UniqueConstraintError
from ._model.model import Field, Model
from ._model.schema import Schema
from ._orm import create_orm_from_runtime


class DemoUser(Model, key_prefix="demo_user"):
    email: str = Field(unique=True)
    name: str
    plan: str = Field("free", index=True)


class DemoSession(Model, key_prefix="demo_session", ttl=timedelta(minutes=30)):
    token: str = Field(unique=True)
    user_id: str = Field(index=True)


class DemoToken(Model, key_prefix="demo_token", ttl=timedelta(hours=1)):
    code: str = Field(unique=True)
    email: str


@contextlib.asynccontextmanager
async def _client(url: str | None, backend: str) -> AsyncIterator[Any]:
    """A client on ``url``, or on a private embedded server that is stopped afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        if url is None:
            from .testing import EmbeddedRedis

            server = await stack.enter_async_context(EmbeddedRedis())
            url = server.url
        if backend == "upstash":
            from upstash_redis.asyncio import Redis as UpstashRedis

            from .testing import UpstashRestServer

            rest = stack.enter_context(UpstashRestServer(url, token="demo-token"))
            client: Any = UpstashRedis(url=rest.url, token=rest.token, rest_retries=0, allow_telemetry=False)
            stack.push_async_callback(client.close)
        else:
            client = aioredis.Redis.from_url(url)
            stack.push_async_callback(client.aclose)
        yield client


async def run_demo(
    url: str | None = None,
    backend: str = "redis",
    ttl: timedelta = timedelta(seconds=30),
    say: Callable[[str], None] = print,
) -> None:
    async with _client(url, backend) as client:
        orm = await create_orm_from_runtime(schema=Schema([DemoUser, DemoSession, DemoToken]), client=client)
        users, sessions, tokens = orm.repo(DemoUser), orm.repo(DemoSession), orm.repo(DemoToken)
        say(f"connected to {orm.capabilities.backend_kind}")
        ada = await users.upsert(where={"email": "ada@example.com"}, create={"name": "Ada"}, update={})
        say(f"user:             {ada!r}")
        say(f"by id:            {await users.find_unique(where={'id': ada.id})!r}")
        say(f"by unique email:  {await users.find_unique(where={'email': 'ada@example.com'})!r}")
        try:
            await users.create(data={"email": "ada@example.com", "name": "Impostor"})
        except UniqueConstraintError as exc:
            say(f"unique violation: {exc} (code={exc.code}, constraint={exc.constraint})")
        upgraded = await users.update(where={"id": ada.id}, data={"plan": "pro"})
        say(f"updated:          {upgraded!r}")
        session = await sessions.create(data={"token": "s3cr3t-session", "user_id": ada.id}, ttl=ttl)
        say(f"session:          {session!r} (expires with its unique token claim)")
        found = await sessions.find_unique(where={"token": "s3cr3t-session"})
        say(f"session by token: {found!r}")
        code = await tokens.create(data={"code": "123456", "email": ada.email})
        say(f"verification:     {code!r}")
        consumed = await tokens.delete(where={"code": "123456"})
        again = await tokens.delete(where={"code": "123456"})
        say(f"consumed once:    {consumed is not None}; twice: {again}")
        async with orm.transaction() as tx:
            tx.repo(DemoSession).delete(where={"id": session.id})
            tx.repo(DemoUser).update(where={"id": ada.id}, data={"name": "Ada Lovelace"})
        renamed = await users.find_unique(where={"id": ada.id})
        say(f"after unit of work: sessions={await sessions.count()}, user={renamed!r}")
        await users.delete(where={"id": ada.id})
        say(f"deleted; users left: {await users.count()}")
        for model in (DemoUser, DemoSession, DemoToken):
            report = await orm.audit(model)
            say(f"audit {model.__name__}: ok={report.ok}")
        say(f"capabilities:     {orm.capabilities}")
