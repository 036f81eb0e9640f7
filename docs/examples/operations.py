"""Looking after a model's indexes from Python: audit, repair, reindex, sweep, inspect.
Run by tests/test_docs.py against a real server."""

from __future__ import annotations

import redis.asyncio

from redis_orm_async import Field, Model, Schema, create_orm


class Member(Model, key_prefix="member"):
    email: str = Field(unique=True)
    team: str = Field(index=True)


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    orm = create_orm(Schema([Member]), client)
    await orm.repo(Member).create_many([{"email": f"m{n}@x.io", "team": f"t{n % 4}"} for n in range(400)])
    keys = orm.schema.meta(Member).keys
    await client.delete(keys.equality("team", "t1"))  # an index key deleted by hand

    before = await orm.audit(Member)  # reads only; report.problems lists every difference
    repaired = await orm.repair(Member)  # rebuilds from the records, safe while writes go on
    after = await orm.audit(Member)
    stats = await orm.inspect(Member)  # records, index keys, claims, expiry backlog, memory

    await client.aclose()
    return {
        "problems": len(before.problems),
        "rebuilt": repaired.records,
        "ok": after.ok,
        "t1": stats.index_keys,
        "claims": stats.claims,
    }
