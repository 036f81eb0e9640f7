"""``redis_orm_async.fastapi``: lifespan, dependencies, overrides, error handlers, the request session
and the rate limit, through ``httpx.ASGITransport`` against real servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from redis_orm_async import (
    AuthenticationError,
    BackendError,
    BackendUnavailableError,
    DataValidationError,
    NotFoundError,
    Orm,
    OrmError,
    QueryError,
    RateLimitBucket,
    RelationNotLoadedError,
    Repository,
    Schema,
    SchemaError,
    TransactionConflictError,
    UniqueConstraintError,
    create_orm,
)
from redis_orm_async.fastapi import (
    OrmDep,
    RateLimit,
    SessionDep,
    add_error_handlers,
    get_orm,
    orm_lifespan,
    repository,
)
from redis_orm_async.testing import EmbeddedRedis

from .models import User

MakeOrm = Callable[..., Orm]
SCHEMA = Schema([User])
Users = Annotated[Repository[User], Depends(repository(User))]


class Age(BaseModel):
    age: int


def build_app(source: Orm | Callable[[], Orm], **lifespan: Any) -> FastAPI:
    app = FastAPI(lifespan=orm_lifespan(source, **lifespan))
    add_error_handlers(app)

    @app.post("/users", status_code=201)
    async def create(body: dict[str, Any], users: Users) -> User:
        return await users.create(body)

    @app.get("/users/{user_id}")
    async def read(user_id: str, users: Users) -> User:
        return await users.find_unique_or_raise({"id": user_id})

    @app.put("/users/{user_id}/age")
    async def set_age(user_id: str, body: Age, db: SessionDep, fail: bool = False) -> User:
        user = await db.get(User, user_id)
        if user is None:
            raise HTTPException(404, "no such user")
        user.age = body.age
        if fail:
            raise HTTPException(409, "changed my mind")
        return user

    @app.post("/race/{user_id}")
    async def race(user_id: str, db: SessionDep, orm: OrmDep) -> User:
        user = await db.get(User, user_id)
        assert user is not None
        user.name = "mine"
        await orm.repo(User).update({"id": user_id}, {"age": {"increment": 1}})  # someone else
        return user

    @app.get("/count")
    async def count(orm: OrmDep) -> int:
        return await orm.repo(User).count()

    return app


@asynccontextmanager
async def client_for(app: FastAPI, *, lifespan: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app; ASGITransport runs no lifespan, so the test enters it."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        if not lifespan:
            yield client
            return
        async with app.router.lifespan_context(app):
            yield client


async def test_the_lifespan_opens_and_closes_the_orm_around_the_apps_own(
    redis_server: EmbeddedRedis, raw: Any
) -> None:
    events: list[str] = []
    built: list[Orm] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[Mapping[str, Any]]:
        orm = app.state.redis_orm
        events.append(f"start:{await orm.repo(User).count()}")  # the ORM is already open
        yield {"started": True}
        events.append("stop")

    def make() -> Orm:
        orm = create_orm(SCHEMA, url=redis_server.url)
        built.append(orm)
        return orm

    app = build_app(make, lifespan=own)
    before = await settled_clients(raw, None)
    for _ in range(2):  # each start of the app builds its own ORM
        async with app.router.lifespan_context(app) as state:
            assert state == {"started": True}
            async with client_for(app, lifespan=False) as client:
                assert (
                    await client.post("/users", json={"email": f"{len(built)}@x.io", "age": 1})
                ).status_code == 201
                assert (await client.get("/count")).json() == len(built)
        assert events[-2:] == [f"start:{len(built) - 1}", "stop"]
        assert app.state.redis_orm is None
    assert len(built) == 2 and built[0] is not built[1] and all(orm.owns_client for orm in built)
    assert await settled_clients(raw, before) == before, "both owned clients were closed"


async def test_without_a_running_lifespan_the_error_says_what_to_do(make_orm: MakeOrm) -> None:
    app = build_app(make_orm(SCHEMA))
    async with client_for(app, lifespan=False) as client:
        response = await client.get("/count")
    assert response.status_code == 500 and response.json()["code"] == "orm_error"
    assert response.json()["message"] == "internal error", "5xx answers never show internals"


async def test_dependency_overrides_swap_the_orm_for_every_dependency(
    make_orm: MakeOrm, redis_server: EmbeddedRedis
) -> None:
    test_orm = make_orm(SCHEMA)
    app = build_app(lambda: create_orm(SCHEMA, url="redis://127.0.0.1:1"))  # never started
    app.dependency_overrides[get_orm] = lambda: test_orm
    async with client_for(app, lifespan=False) as client:
        made = await client.post("/users", json={"email": "o@x.io", "age": 3})
        assert made.status_code == 201
        user_id = made.json()["id"]
        assert (await client.put(f"/users/{user_id}/age", json={"age": 4})).json()["age"] == 4
    stored = await test_orm.repo(User).find_unique({"id": user_id})
    assert stored is not None and stored.age == 4


async def test_the_request_session_is_saved_before_the_response_or_not_at_all(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    users = orm.repo(User)
    ada = await users.create({"email": "ada@x.io", "age": 36})
    async with client_for(build_app(orm)) as client:
        response = await client.put(f"/users/{ada.id}/age", json={"age": 37})
        assert response.status_code == 200 and response.json()["age"] == 37
        saved = await users.find_unique({"id": ada.id})
        assert saved is not None and saved.age == 37

        refused = await client.put(f"/users/{ada.id}/age", params={"fail": True}, json={"age": 99})
        assert refused.status_code == 409
        kept = await users.find_unique({"id": ada.id})
        assert kept is not None and kept.age == 37, "an endpoint that raised saves nothing"

        conflict = await client.post(f"/race/{ada.id}")
        assert conflict.status_code == 503 and conflict.headers["Retry-After"] == "1"
        assert conflict.json() == {
            "code": "transaction_conflict",
            "message": "the data changed while the request ran; retry",
            "retryable": True,
            "detail": [],
        }
        raced = await users.find_unique({"id": ada.id})
        assert raced is not None and raced.age == 38 and raced.name is None, "never a silent overwrite"


async def settled_clients(raw: Any, expected: int | None) -> int:
    """The server's client count once it has noticed closed sockets (it does so asynchronously);
    with no ``expected`` count, once it has stopped changing."""
    last = -1
    for _ in range(150):
        count = int((await raw.info("clients"))["connected_clients"])
        if count == expected or (expected is None and count == last):
            return count
        last = count
        await anyio.sleep(0.02)
    return count


def raising_app(error: Exception) -> FastAPI:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    @app.post("/body")
    async def body(data: Age) -> int:
        return data.age

    return app


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UniqueConstraintError("User: email taken", meta={"fields": ("email",)}), 409, "unique_violation"),
        (NotFoundError("no User matches the given id"), 404, "not_found"),
        (
            DataValidationError("bad", errors=[{"type": "x", "loc": ("age",), "msg": "m", "input": "s"}]),
            422,
            "validation_failed",
        ),
        (QueryError("User has no field 'nope'"), 400, "query_unsupported"),
        (TransactionConflictError("User: changed"), 503, "transaction_conflict"),
        (BackendUnavailableError("redis is unavailable: 10.0.0.7:6379 refused"), 503, "backend_unavailable"),
        (AuthenticationError("redis refused the credentials"), 500, "authentication_failed"),
        (BackendError("redis error: WRONGTYPE {user}:r:secret-id"), 500, "backend_error"),
        (SchemaError("User.x cannot be stored"), 500, "schema_invalid"),
        (RelationNotLoadedError("Post.author was not loaded"), 500, "relation_not_loaded"),
        (OrmError("anything else"), 500, "orm_error"),
    ],
)
async def test_every_error_has_its_status_and_one_body_shape(error: OrmError, status: int, code: str) -> None:
    async with client_for(raising_app(error), lifespan=False) as client:
        response = await client.get("/boom")
    body = response.json()
    assert response.status_code == status
    assert set(body) == {"code", "message", "retryable", "detail"} and body["code"] == code
    assert body["retryable"] is error.retryable
    if status == 503:
        assert response.headers["Retry-After"] == "1"
    if status >= 500:
        assert "10.0.0.7" not in body["message"] and "secret-id" not in body["message"]
    if status == 422:
        assert body["detail"] == [{"loc": ["age"], "msg": "m", "type": "x"}]
    if status == 409:
        assert body["detail"] == [{"loc": ["email"], "msg": "already taken", "type": "unique_violation"}]


async def test_request_validation_errors_share_the_shape_and_never_echo_the_input() -> None:
    huge = "9" * 5_000_000 + "x"
    async with client_for(raising_app(OrmError("unused")), lifespan=False) as client:
        response = await client.post("/body", json={"age": huge})
    assert response.status_code == 422 and len(response.content) < 1000
    assert response.json()["code"] == "validation_failed"
    assert response.json()["detail"][0]["loc"] == ["body", "age"]


async def test_an_orm_validation_error_of_a_huge_value_is_a_small_422(make_orm: MakeOrm) -> None:
    async with client_for(build_app(make_orm(SCHEMA))) as client:
        response = await client.post(
            "/users", json={"email": "big@x.io", "name": "n" * 5_000_000, "age": "x"}
        )
        assert response.status_code == 422 and len(response.content) < 1000
        assert response.json()["detail"] == [
            {"loc": ["age"], "msg": "Input should be a valid integer, unable to parse string as an integer",
             "type": "int_parsing"}
        ]  # fmt: skip
        huge = await client.post("/users", json={"email": "big@x.io", "age": "1" * 5_000_000})
        assert huge.status_code == 422 and len(huge.content) < 1000
        assert huge.json()["detail"][0]["loc"] == ["age"]
        taken = await client.post("/users", json={"email": "big@x.io", "age": 1})
        assert taken.status_code == 201
        again = await client.post("/users", json={"email": "big@x.io", "age": 2})
        assert again.status_code == 409 and again.json()["detail"][0]["loc"] == ["email"]
        missing = await client.get("/users/nobody-here")
        assert missing.status_code == 404 and "nobody-here" not in missing.text


def limited_app(orm: Orm, rate: str, **options: Any) -> FastAPI:
    app = FastAPI(lifespan=orm_lifespan(orm))
    add_error_handlers(app)
    limit = RateLimit(rate, **options)

    @app.get("/a", dependencies=[Depends(limit)])
    async def route_a() -> str:
        return "a"

    @app.get("/b", dependencies=[Depends(limit)])
    async def route_b() -> str:
        return "b"

    return app


async def test_64_concurrent_requests_against_a_limit_of_n_let_exactly_n_through(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)
    responses: list[httpx.Response] = []
    async with client_for(limited_app(orm, "7/minute")) as client:

        async def request() -> None:
            responses.append(await client.get("/a"))

        async with anyio.create_task_group() as group:
            for _ in range(64):
                group.start_soon(request)
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        assert len(ok) == 7 and len(refused) == 57
        assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok) == list(range(7))
        for response in refused:
            assert response.json()["code"] == "rate_limited" and response.json()["retryable"] is True
            assert 1 <= int(response.headers["Retry-After"]) <= 60
            assert (
                response.headers["X-RateLimit-Limit"] == "7"
                and response.headers["X-RateLimit-Remaining"] == "0"
            )
            assert 0 <= int(response.headers["X-RateLimit-Reset"]) <= 60
        assert (await client.get("/b")).status_code == 200, "each route has its own buckets"
    assert (await orm.audit(RateLimitBucket)).ok


async def test_rate_limit_keys_and_shared_names(make_orm: MakeOrm) -> None:
    orm = make_orm(SCHEMA)

    async def api_key(request: Request) -> str:
        return request.headers.get("X-Api-Key", "anonymous")

    async with client_for(limited_app(orm, "2/minute", key=api_key, name="shared")) as client:
        one = {"X-Api-Key": "one"}
        assert [(await client.get(path, headers=one)).status_code for path in ("/a", "/b", "/a")] == [
            200,
            200,
            429,
        ]
        assert (await client.get("/a", headers={"X-Api-Key": "two"})).status_code == 200
    assert await orm.repo(RateLimitBucket).count() == 2
