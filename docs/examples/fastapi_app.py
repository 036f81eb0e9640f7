"""A FastAPI service: users, one-time sign-in codes, sliding login sessions with sign-out-everywhere,
and a rate limit, all through one schema and one ORM.

Run by tests/test_fastapi_example.py through httpx.ASGITransport on every backend, and once under
a real uvicorn; by hand:

    REDIS_URL=redis://localhost:6379 uvicorn fastapi_app:app --app-dir docs/examples
"""

import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException
from pydantic import BaseModel

from redis_orm_async import Field, Model, NotFoundError, Orm, Repository, Schema, create_orm
from redis_orm_async.fastapi import RateLimit, SessionDep, add_error_handlers, orm_lifespan, repository

IDLE = timedelta(minutes=30)  # a login session unused this long expires...
MAX_LIFE = timedelta(days=7)  # ...and none lives longer than this, however often it is used


class User(Model, key_prefix="user"):
    email: str = Field(unique=True)
    name: str
    verified: bool = False


class SignInCode(Model, key_prefix="code", ttl=timedelta(minutes=15)):
    code: str = Field(unique=True)  # sent by email; single use
    user_id: str


class LoginSession(Model, key_prefix="login", ttl=IDLE, max_life=MAX_LIFE):
    token: str = Field(unique=True)
    user_id: str = Field(index=True)  # indexed: sign-out-everywhere deletes by user


SCHEMA = Schema([User, SignInCode, LoginSession])
Users = Annotated[Repository[User], Depends(repository(User))]
Codes = Annotated[Repository[SignInCode], Depends(repository(SignInCode))]
Sessions = Annotated[Repository[LoginSession], Depends(repository(LoginSession))]


class SignUp(BaseModel):
    email: str
    name: str


class Email(BaseModel):
    email: str


class Rename(BaseModel):
    name: str


class Code(BaseModel):
    code: str


class Token(BaseModel):
    token: str


class Revoked(BaseModel):
    revoked: int


async def current_session(sessions: Sessions, authorization: Annotated[str, Header()]) -> LoginSession:
    """The caller's login session, its idle timeout slid forward (never past MAX_LIFE): one
    round trip."""
    token = authorization.removeprefix("Bearer ").strip()
    session = await sessions.touch({"token": token}) if token else None
    if session is None:
        raise HTTPException(401, "sign in again", headers={"WWW-Authenticate": "Bearer"})
    return session


CurrentSession = Annotated[LoginSession, Depends(current_session)]


def create_app(make_orm: Callable[[], Orm], *, sign_in_rate: str = "5/minute") -> FastAPI:
    app = FastAPI(lifespan=orm_lifespan(make_orm))
    add_error_handlers(app)  # 409 for a taken email, 404, 422, 429, 503 with Retry-After: one shape

    @app.post("/users", status_code=201)
    async def sign_up(body: SignUp, users: Users, codes: Codes) -> Code:
        user = await users.create({"email": body.email, "name": body.name})
        sent = await codes.create({"code": secrets.token_urlsafe(16), "user_id": user.id})
        return Code(code=sent.code)  # a real service emails it

    @app.post("/sign-in", dependencies=[Depends(RateLimit(sign_in_rate))])
    async def send_code(body: Email, users: Users, codes: Codes) -> Code:
        user = await users.find_unique_or_raise({"email": body.email})
        sent = await codes.create({"code": secrets.token_urlsafe(16), "user_id": user.id})
        return Code(code=sent.code)

    @app.post("/sign-in/{code}")
    async def sign_in(code: str, codes: Codes, users: Users, sessions: Sessions) -> Token:
        used = await codes.delete({"code": code})  # read and delete at once: it works once
        if used is None:
            raise NotFoundError("unknown, used or expired sign-in code")
        await users.update({"id": used.user_id}, {"verified": True})
        session = await sessions.create({"token": secrets.token_urlsafe(24), "user_id": used.user_id})
        return Token(token=session.token)

    @app.get("/me")
    async def me(current: CurrentSession, users: Users) -> User:
        return await users.find_unique_or_raise({"id": current.user_id})

    @app.patch("/me")
    async def rename(body: Rename, current: CurrentSession, db: SessionDep) -> User:
        user = await db.get(User, current.user_id)
        if user is None:
            raise NotFoundError("the user is gone")
        user.name = body.name  # written when the endpoint returns, before the response is sent
        return user

    @app.post("/sign-out-everywhere")
    async def sign_out_everywhere(current: CurrentSession, sessions: Sessions) -> Revoked:
        return Revoked(revoked=await sessions.delete_many({"user_id": current.user_id}))

    return app


def orm_from_environment() -> Orm:
    return create_orm(SCHEMA, url=os.environ.get("REDIS_URL", "redis://localhost:6379"))


app = create_app(orm_from_environment)
