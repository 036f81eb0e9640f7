"""The benchmark's models, once as ORM models and once as the plain Pydantic classes raw code uses.

Both lines hand back validated Pydantic objects, because an application needs typed records either
way; what the ORM adds on top of that is what the ratios measure. The raw lines keep their own key
layout (see ``raw.py``), so the lines are compared by their results, never by their keys.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField

from redis_orm_async import BelongsTo, Field, HasMany, Model, Schema, belongs_to, has_many

STATUSES = ("active", "inactive", "banned")
AGE_RANGE = (18, 80)


class User(Model):
    email: str = Field(unique=True)
    name: str
    age: int = Field(index=True)
    status: str = Field(index=True)
    posts: ClassVar[HasMany[Post]] = has_many("Post", foreign_key="author_id")


class Post(Model):
    author_id: str = Field(index=True)
    title: str
    body: str
    author: ClassVar[BelongsTo[User]] = belongs_to(User, foreign_key="author_id")


SESSION_TTL = timedelta(minutes=30)


class Session(Model, ttl=SESSION_TTL):
    """A sliding login session: a unique token, the user it belongs to, and a status."""

    token: str = Field(unique=True)
    user_id: str = Field(index=True)
    status: str = Field(index=True)


def schema() -> Schema:
    return Schema([User, Post, Session])


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TWO_CHARS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
"""Crockford base32 of every 10-bit value: 13 lookups write the 26 characters of 130 bits."""


def new_id() -> str:
    """A 26-character, time-ordered id with 80 random bits, like the ORM's ULIDs (sorts the same).

    The fastest text we know in Python (``base64.b32encode`` is pure Python before 3.13 and takes
    twice as long), and random bits from ``random`` (ids are not secrets; one OS read per id
    would cost more than the rest of it)."""
    value = (time.time_ns() // 1_000_000) << 80 | random.getrandbits(80)
    return "".join([_TWO_CHARS[(value >> shift) & 1023] for shift in range(120, -1, -10)])


class RawUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = PydanticField(default_factory=new_id)
    email: str
    name: str
    age: int
    status: str


class RawPost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = PydanticField(default_factory=new_id)
    author_id: str
    title: str
    body: str


class RawRateStatus(BaseModel):
    """What a rate-limit check answers, with the numbers of the ``X-RateLimit-*`` headers."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    hits: int


class RawSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = PydanticField(default_factory=new_id)
    token: str
    user_id: str
    status: str


def user_data(rng: random.Random, tag: str, number: int) -> dict[str, Any]:
    """Input for one user; ``tag`` keeps emails of different runs and lines apart."""
    return {
        "email": f"{tag}_{number}@bench.example",
        "name": f"User {tag} {number}",
        "age": rng.randint(*AGE_RANGE),
        "status": rng.choice(STATUSES),
    }


def users_data(seed: int, tag: str, count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [user_data(rng, tag, number) for number in range(count)]


def posts_data(seed: int, author_ids: list[str], count: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "author_id": rng.choice(author_ids),
            "title": f"Post {number}",
            "body": "lorem ipsum dolor sit amet " * 4,
        }
        for number in range(count)
    ]


def sessions_data(seed: int, tag: str, count: int, users: int) -> list[dict[str, Any]]:
    """Sessions of ``users`` users; about two in three are active. ``tag`` keeps tokens apart."""
    rng = random.Random(seed)
    return [
        {
            "token": f"{tag}t{number}x{rng.getrandbits(64):016x}",
            "user_id": f"u{rng.randrange(users)}",
            "status": "active" if rng.random() < 0.67 else "idle",
        }
        for number in range(count)
    ]


def comparable(record: BaseModel | None, *, skip: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """A record as plain data, so that an ORM model and a raw model can be compared."""
    if record is None:
        return None
    return {key: value for key, value in record.model_dump().items() if key not in skip}
