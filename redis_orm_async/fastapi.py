"""FastAPI integration (``pip install 'redis-orm-async[fastapi]'``).

Everything an app needs, written the way FastAPI apps are: a lifespan, ``Annotated``
dependencies, exception handlers, a rate-limit dependency::

    app = FastAPI(lifespan=orm_lifespan(lambda: create_orm(SCHEMA, url=REDIS_URL)))
    add_error_handlers(app)
    Users = Annotated[Repository[User], Depends(repository(User))]

    @app.get("/users/{user_id}", dependencies=[Depends(RateLimit("20/minute"))])
    async def read_user(user_id: str, users: Users) -> User:
        return await users.find_unique_or_raise({"id": user_id})

- ``orm_lifespan`` opens the ORM when the app starts and closes it when it stops, around the
  app's own lifespan if it has one. The ORM is kept on ``app.state`` (no global state), which is
  also where tests find it: ``httpx.ASGITransport`` runs no lifespan, so a test enters
  ``app.router.lifespan_context(app)`` itself, or overrides ``get_orm`` in
  ``app.dependency_overrides`` (every dependency here reaches the ORM through ``get_orm``).
- ``OrmDep``, ``repository(Model)`` and ``SessionDep``: the ORM, a typed repository, and a request
  session (``OrmSession``) that is written when the endpoint returns without an error, before the
  response is sent, so a conflict or a taken unique value still becomes the response.
- ``add_error_handlers``: every ``OrmError`` becomes one JSON shape,
  ``{"code", "message", "retryable", "detail": [{"loc", "msg", "type"}]}``, with the status of its
  kind (see ``STATUSES``); 5xx answers say only what happened, never the internals.
- ``RateLimit("20/minute")``: one round trip per request, windows timed by the Redis server.
"""

import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, TypeVar, overload

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from . import (
    BackendUnavailableError,
    DataValidationError,
    Model,
    NotFoundError,
    Orm,
    OrmError,
    OrmSession,
    QueryError,
    Rate,
    RateLimitedError,
    RateLimitStatus,
    Repository,
    TransactionConflictError,
    UniqueConstraintError,
)

__all__ = [
    "STATUSES",
    "OrmDep",
    "RateLimit",
    "SessionDep",
    "add_error_handlers",
    "client_host",
    "error_response",
    "error_status",
    "get_orm",
    "orm_lifespan",
    "repository",
    "request_session",
]

M = TypeVar("M", bound=Model)
STATE_KEY = "redis_orm"
"""The attribute of ``app.state`` that holds the app's ORM."""
RETRY_AFTER = 1
"""Seconds a client waits before retrying after a conflict or an unavailable backend."""
logger = logging.getLogger("redis_orm_async.fastapi")

STATUSES: tuple[tuple[type[OrmError], int], ...] = (
    (UniqueConstraintError, 409),
    (NotFoundError, 404),
    (DataValidationError, 422),
    (QueryError, 400),
    (RateLimitedError, 429),
    (TransactionConflictError, 503),
    (BackendUnavailableError, 503),
    (OrmError, 500),
)
"""The HTTP status of each kind of error; the first class an error is an instance of wins."""

SERVER_MESSAGES = {
    "transaction_conflict": "the data changed while the request ran; retry",
    "backend_unavailable": "the database is unavailable; retry later",
}

S = TypeVar("S", bound=Mapping[str, Any] | None)
KeyFunction = Callable[[Request], str | Awaitable[str]]
OrmSource = Orm | Callable[[], Orm]


@overload
def orm_lifespan(orm: OrmSource) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]: ...


@overload
def orm_lifespan(
    orm: OrmSource, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[S]]
) -> Callable[[FastAPI], AbstractAsyncContextManager[S]]: ...


def orm_lifespan(
    orm: OrmSource, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]] | None = None
) -> Callable[[FastAPI], AbstractAsyncContextManager[Any]]:
    """A lifespan that opens the ORM (checking that the server answers), keeps it on
    ``app.state``, runs the app's own ``lifespan`` inside, and closes the ORM at shutdown.

    Pass a function that builds the ORM (``lambda: create_orm(SCHEMA, url=...)``), so that each
    start of the app (each test) gets a fresh client; an ``Orm`` built from a URL is closed at
    shutdown, one built over your own client leaves that client open. Whatever state the app's
    lifespan yields is passed on.
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[Any]:
        current = orm() if callable(orm) and not isinstance(orm, Orm) else orm
        async with current:
            setattr(app.state, STATE_KEY, current)
            try:
                if lifespan is None:
                    yield None
                else:
                    async with lifespan(app) as state:
                        yield state
            finally:
                setattr(app.state, STATE_KEY, None)

    return run


def get_orm(request: Request) -> Orm:
    """The app's ORM; override this one dependency to give a test app another ORM."""
    orm = getattr(request.app.state, STATE_KEY, None)
    if not isinstance(orm, Orm):
        raise OrmError(
            "this app has no running ORM: create it with FastAPI(lifespan=orm_lifespan(...)), and in "
            "tests enter app.router.lifespan_context(app) (httpx.ASGITransport runs no lifespan) or "
            "set app.dependency_overrides[get_orm]"
        )
    return orm


OrmDep = Annotated[Orm, Depends(get_orm)]


def repository(model: type[M]) -> Callable[..., Repository[M]]:
    """A dependency giving ``model``'s typed repository:
    ``Users = Annotated[Repository[User], Depends(repository(User))]``."""

    def model_repository(orm: OrmDep) -> Repository[M]:
        return orm.repo(model)

    model_repository.__name__ = f"{model.__name__.lower()}_repository"
    return model_repository


async def request_session(orm: OrmDep) -> AsyncIterator[OrmSession]:
    """One ``OrmSession`` per request, written when the endpoint returns without an error and
    dropped when it raises (an ``HTTPException`` too). Use it as ``SessionDep``, whose
    ``scope="function"`` writes it before the response is sent (so a dependency of yours that
    uses it and yields must be ``scope="function"`` too)."""
    async with orm.session() as session:
        yield session


SessionDep = Annotated[OrmSession, Depends(request_session, scope="function")]


def client_host(request: Request) -> str:
    """The client's address as the server saw it (behind a proxy, key by a trusted header)."""
    return request.client.host if request.client is not None else "unknown"


class RateLimit:
    """A dependency allowing ``rate`` (``"20/minute"``) requests per key, answering 429 after.

    ``key`` turns a request into the key it is counted under (the client's address by default;
    a user id, an API key); it may be async. Each route has its own buckets unless ``name`` is
    given, which makes every route using that name share them. Each request costs one round trip
    (one ``upsert``): see ``redis_orm_async.RateLimiter`` for the design. An allowed request's
    response gets ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
    (seconds until the window ends) when the endpoint returns data rather than a ``Response``;
    a refused one is ``RateLimitedError``, which ``add_error_handlers`` answers with 429 and
    ``Retry-After``. When Redis cannot be reached the request fails (503): the limit fails
    closed rather than letting every request through.
    """

    def __init__(self, rate: str | Rate, *, key: KeyFunction = client_host, name: str | None = None) -> None:
        self.rate = Rate.parse(rate)
        self.key = key
        self.name = name

    async def __call__(self, request: Request, response: Response, orm: OrmDep) -> RateLimitStatus:
        key = self.key(request)
        if inspect.isawaitable(key):
            key = await key
        limiter = orm.rate_limiter(self.rate, name=self.name or _route_name(request))
        status = await limiter.hit(key)
        response.headers.update(_rate_headers(status.limit, status.remaining, status.reset_after))
        return status.check()


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


def _rate_headers(limit: int, remaining: int, reset_after: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(math.ceil(reset_after)),
    }


def error_status(exc: OrmError) -> int:
    return next(status for kind, status in STATUSES if isinstance(exc, kind))


def error_response(exc: OrmError) -> JSONResponse:
    """The one JSON shape of every ``OrmError``, with its status and headers."""
    status = error_status(exc)
    detail: list[dict[str, Any]] = []
    headers: dict[str, str] = {}
    if isinstance(exc, DataValidationError):
        message = "the submitted data is not valid"
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    elif isinstance(exc, UniqueConstraintError):
        message = exc.message
        detail = [{"loc": list(exc.fields), "msg": "already taken", "type": exc.code}]
    elif status >= 500:
        message = SERVER_MESSAGES.get(exc.code, "internal error")
    else:
        message = exc.message
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER)
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(exc.retry_after)
        headers.update(_rate_headers(exc.limit, exc.remaining, exc.reset_after))
    body = {"code": exc.code, "message": message, "retryable": exc.retryable, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


async def orm_error_handler(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, OrmError):  # pragma: no cover - registered for OrmError only
        raise exc
    if error_status(exc) == 500:
        logger.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
    return error_response(exc)


async def request_validation_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's own 422, in the same shape and as safe: without the submitted values."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return error_response(DataValidationError("the request is not valid", errors=errors))


def add_error_handlers(app: FastAPI, *, request_validation: bool = True) -> None:
    """Answer every ``OrmError`` with ``error_response``; with ``request_validation``, answer
    FastAPI's own request validation errors in the same shape too (without echoing the input,
    which FastAPI's default 422 does)."""
    app.add_exception_handler(OrmError, orm_error_handler)
    if request_validation:
        app.add_exception_handler(RequestValidationError, request_validation_handler)
