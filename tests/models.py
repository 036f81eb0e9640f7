"""Models shared by the contract tests."""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, EmailStr

from redis_orm_async import Field, Model


class Status(enum.Enum):
    ACTIVE = "active"
    BANNED = "banned"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    city: str
    zip: str | None = None


class User(Model):
    email: str = Field(unique=True)
    age: int = Field(index=True)
    status: str = Field("active", index=True)
    name: str | None = None


class Everything(Model, key_prefix="every"):
    """One field of every supported type, all optional so that None can be tested too."""

    text: str | None = Field(None, index=True)
    number: int | None = Field(None, index=True)
    ratio: float | None = Field(None, index=True)
    flag: bool | None = Field(None, index=True)
    price: Decimal | None = Field(None, index=True)
    at: datetime | None = Field(None, index=True)
    day: date | None = Field(None, index=True)
    status: Status | None = Field(None, index=True)
    level: Level | None = None
    data: dict[str, Any] | None = None
    items: list[int] | None = None
    address: Address | None = None
    email: EmailStr | None = None


class Account(Model, unique_together=[("org", "slug")]):
    """A manual string id and a compound unique constraint."""

    id: str
    org: str
    slug: str
    plan: str = Field("free", index=True)


class Ticket(Model, unique_together=[("org", "number")]):
    """A manual integer id and a compound unique constraint over two fields."""

    id: int
    org: str = Field(index=True)
    number: int
    title: str = ""
