"""Field expressions, typed projections and streams. Run by tests/test_docs.py."""

from __future__ import annotations

import redis.asyncio
from pydantic import BaseModel

from redis_orm_async import Field, Model, Schema, col, create_orm, desc, not_, or_


class Member(Model):
    email: str = Field(unique=True)
    age: int = Field(index=True)
    status: str = Field("active", index=True)


class Contact(BaseModel):  # a projection: only these fields are read, and it is what comes back
    email: str
    age: int


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url)
    members = create_orm(Schema([Member]), client).repo(Member)
    await members.create_many([
        {"email": "ada@example.com", "age": 36},
        {"email": "bob@example.com", "age": 17},
        {"email": "cy@example.com", "age": 52, "status": "banned"},
        {"email": "di@example.com", "age": 41},
    ])  # fmt: skip

    adults = await members.find_many(  # list[Member]; a misspelled field fails in mypy and pyright
        Member.age >= 18, Member.status == "active", order_by=desc(Member.age), take=10
    )
    flagged = await members.count(or_(Member.age < 18, Member.status == "banned"))
    others = await members.find_many(not_(Member.email.startswith("a")), col(Member.age).in_([17, 41]))
    contacts = await members.find_many(Member.age > 30, select=Contact)  # list[Contact]
    window = await members.find_many(col(Member.age).range(18, 60, start=1, num=2))  # redisca's range
    async for member in members.stream(Member.status == "active", batch=500):  # bounded memory
        print(member.email)
    oldest = await members.update(Member.status == "active", {"status": "vip"}, order_by=desc(Member.age))

    result = {
        "adults": [m.email for m in adults],
        "flagged": flagged,
        "others": [m.email for m in others],
        "contacts": [(c.email, c.age) for c in contacts],
        "window": [m.age for m in window],
        "vip": oldest.email if oldest else None,
    }
    await client.aclose()
    return result
