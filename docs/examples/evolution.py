"""Changing a model that has records: a renamed attribute, a short stored name, a new field with a
default, a removed field, and a new index and unique built by reindex. Run by tests/test_docs.py."""

from __future__ import annotations

import redis.asyncio

from redis_orm_async import Field, IndexNotBuiltError, Model, Schema, create_orm


class CustomerV1(Model, key_prefix="customer"):
    email: str = Field(unique=True)
    name: str
    fax: str | None = None


class CustomerV2(Model, key_prefix="customer"):  # version 2, over the same records
    email: str = Field(unique=True)
    full_name: str = Field(stored_as="name")  # renamed in Python, still stored as "name"
    country: str = Field("unknown", index=True)  # new, with a default, and indexed
    vip: bool = False  # new: old records read False
    # fax is gone: old records keep it in their hash, and reads ignore it


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url)
    old = create_orm(Schema([CustomerV1]), client)
    await old.repo(CustomerV1).create_many(
        [{"email": f"c{n}@example.com", "name": f"Customer {n}", "fax": "555"} for n in range(100)]
    )

    new = create_orm(Schema([CustomerV2]), client)
    customers = new.repo(CustomerV2)
    first = await customers.find_first()  # reading needs no new index
    try:
        await customers.count(where={"country": "unknown"})  # ... but this one does
        refused = None
    except IndexNotBuiltError as exc:
        refused = exc.meta["indexes"]
    report = await new.reindex(CustomerV2)  # or: redis-orm-async reindex app:schema CustomerV2
    unknown = await customers.count(where={"country": "unknown"})

    await client.aclose()
    return {
        "read": None if first is None else (first.full_name, first.country, first.vip),
        "refused": refused,
        "built": report.indexes,
        "records": report.records,
        "unknown": unknown,
    }
