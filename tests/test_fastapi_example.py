"""The example FastAPI app (docs/examples/fastapi_app.py), through httpx.ASGITransport on every
backend and once under a real uvicorn: sign-up, one-time codes, sliding sessions, sign-out
everywhere, the request session and the rate limit, with the concurrency the issue names."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import anyio
import anyio.abc
import httpx

from redis_orm_async import Orm, RateLimitBucket
from redis_orm_async.testing import EmbeddedRedis, free_port

from .test_docs import ROOT, load_example

MakeOrm = Callable[..., Orm]
example: ModuleType = load_example("docs/examples/fastapi_app.py")


@asynccontextmanager
async def running(orm: Orm, **options: str) -> AsyncIterator[httpx.AsyncClient]:
    """The example app over the test's ORM, its lifespan entered (ASGITransport runs none)."""
    app = example.create_app(lambda: orm, **options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://example") as client:
            yield client


async def signed_up(client: httpx.AsyncClient, email: str) -> str:
    """Sign up and sign in with the emailed code; the session token."""
    made = await client.post("/users", json={"email": email, "name": "Ada"})
    assert made.status_code == 201, made.text
    signed = await client.post(f"/sign-in/{made.json()['code']}")
    assert signed.status_code == 200, signed.text
    token: str = signed.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_whole_flow(make_orm: MakeOrm) -> None:
    orm = make_orm(example.SCHEMA)
    async with running(orm) as client:
        token = await signed_up(client, "ada@example.com")
        me = await client.get("/me", headers=bearer(token))
        assert me.status_code == 200 and me.json()["verified"] is True and me.json()["name"] == "Ada"
        taken = await client.post("/users", json={"email": "ada@example.com", "name": "Other"})
        assert taken.status_code == 409 and taken.json()["code"] == "unique_violation"
        renamed = await client.patch("/me", headers=bearer(token), json={"name": "Ada L."})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Ada L."
        assert (await client.get("/me", headers=bearer(token))).json()["name"] == "Ada L."
        code = (await client.post("/sign-in", json={"email": "ada@example.com"})).json()["code"]
        second = (await client.post(f"/sign-in/{code}")).json()["token"]
        unknown = await client.post("/sign-in", json={"email": "nobody@example.com"})
        assert unknown.status_code == 404 and "nobody" not in unknown.text
        out = await client.post("/sign-out-everywhere", headers=bearer(second))
        assert out.json() == {"revoked": 2}
        for revoked in (token, second):
            assert (await client.get("/me", headers=bearer(revoked))).status_code == 401
        assert (await client.get("/me", headers=bearer("forged"))).status_code == 401
    for model in example.SCHEMA.models:
        assert (await orm.audit(model)).ok


async def test_64_concurrent_sign_ins_against_a_limit_of_n_let_exactly_n_through(make_orm: MakeOrm) -> None:
    orm = make_orm(example.SCHEMA)
    statuses: list[int] = []
    async with running(orm, sign_in_rate="12/minute") as client:
        await signed_up(client, "ada@example.com")

        async def sign_in() -> None:
            response = await client.post("/sign-in", json={"email": "ada@example.com"})
            statuses.append(response.status_code)

        async with anyio.create_task_group() as group:
            for _ in range(64):
                group.start_soon(sign_in)
    assert statuses.count(200) == 12 and statuses.count(429) == 52
    assert await orm.repo(example.SignInCode).count() == 12, "refused requests created nothing"
    assert (await orm.audit(RateLimitBucket)).ok


async def test_100_concurrent_requests_slide_one_session(make_orm: MakeOrm) -> None:
    orm = make_orm(example.SCHEMA)
    async with running(orm) as client:
        token = await signed_up(client, "ada@example.com")
        results: list[int] = []

        async def read_me() -> None:
            results.append((await client.get("/me", headers=bearer(token))).status_code)

        before = orm.backend.stats.round_trips
        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(read_me)
        per_request = (orm.backend.stats.round_trips - before) / 100
    assert results == [200] * 100
    assert per_request <= 2.01, "one touch and one read of the user each, whatever the contention"
    left = await orm.repo(example.LoginSession).ttl({"token": token})
    assert left is not None and example.IDLE - timedelta(seconds=30) < left <= example.IDLE
    assert (await orm.audit(example.LoginSession)).ok


async def test_signing_out_everywhere_revokes_10000_sessions(make_orm: MakeOrm) -> None:
    orm = make_orm(example.SCHEMA)
    sessions = orm.repo(example.LoginSession)
    async with running(orm) as client:
        token = await signed_up(client, "ada@example.com")
        other = await signed_up(client, "bob@example.com")
        user_id = (await client.get("/me", headers=bearer(token))).json()["id"]
        await sessions.create_many([{"token": f"t{n}", "user_id": user_id} for n in range(10_000)])
        before = orm.backend.stats.round_trips
        out = await client.post("/sign-out-everywhere", headers=bearer(token))
        spent = orm.backend.stats.round_trips - before
        assert out.json() == {"revoked": 10_001}
        assert spent <= 1 + 11, "the touch, then one round trip per 1,000 sessions"
        assert (await client.get("/me", headers=bearer(token))).status_code == 401
        assert (await client.get("/me", headers=bearer(other))).status_code == 200
    assert await sessions.count() == 1 and await sessions.find_unique({"token": "t5"}) is None
    assert (await orm.audit(example.LoginSession)).ok


async def test_a_sign_in_code_works_once_among_concurrent_redeemers(make_orm: MakeOrm) -> None:
    orm = make_orm(example.SCHEMA)
    async with running(orm) as client:
        made = await client.post("/users", json={"email": "ada@example.com", "name": "Ada"})
        code = made.json()["code"]
        statuses: list[int] = []

        async def redeem() -> None:
            statuses.append((await client.post(f"/sign-in/{code}")).status_code)

        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(redeem)
    assert statuses.count(200) == 1 and statuses.count(404) == 19
    assert await orm.repo(example.LoginSession).count() == 1


async def test_the_app_under_a_real_uvicorn(redis_server: EmbeddedRedis, raw: object, tmp_path: Path) -> None:
    port = free_port()
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "REDIS_URL": redis_server.url, "PYTHONPATH": path}  # this checkout's package
    app_dir = str(ROOT / "docs" / "examples")
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir", app_dir]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info", "--no-access-log"]
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log_file:
        server = await anyio.open_process(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await served(client, server)
                token = await signed_up(client, "ada@example.com")
                me = await client.get("/me", headers=bearer(token))
                assert me.status_code == 200 and me.json()["email"] == "ada@example.com"
                limited = [await client.post("/sign-in", json={"email": "ada@example.com"}) for _ in range(6)]
                assert [r.status_code for r in limited] == [200] * 5 + [429]
                assert limited[0].headers["X-RateLimit-Limit"] == "5" and "Retry-After" in limited[5].headers
        finally:
            server.terminate()  # uvicorn shuts down gracefully, then exits by the signal it got
            with anyio.fail_after(30):
                await server.wait()
    log = log_path.read_text(errors="replace")
    assert "Application startup complete" in log and "Application shutdown complete" in log, log
    assert "Traceback" not in log and "ERROR" not in log, log


async def served(client: httpx.AsyncClient, server: anyio.abc.Process) -> None:
    """Wait until uvicorn answers (any answer: it is up)."""
    with anyio.fail_after(30):
        for _ in range(3000):
            try:
                await client.get("/me")
                return
            except httpx.TransportError:
                assert server.returncode is None, "uvicorn exited before it served"
                await anyio.sleep(0.1)
