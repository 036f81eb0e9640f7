"""What one record looks like in Redis. Run by tests/test_docs.py against a real server."""

from __future__ import annotations

import redis.asyncio

from redis_orm_async import Field, Model, Schema, create_orm, new_hex_id


class User(Model, key_prefix="user"):
    id: str = Field(default_factory=new_hex_id)  # redisca's short hex ids (the default is a ULID)
    email: str = Field(unique=True, stored_as="eml")  # stored under a short name, as redisca did
    age: int = Field(index=True)
    name: str | None = None


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url, decode_responses=True)
    orm = create_orm(Schema([User]), client)
    ada = await orm.repo(User).create(data={"email": "ada@example.com", "age": 36})

    stored = await orm.repo(User).raw(where={"id": ada.id})  # the HASH, exactly as stored
    # {'id': '0193a8c1e2f40a1b', 'eml': 'ada@example.com', 'age': '36'}
    keys = sorted(await client.keys("{user}:*"))
    # {user}:ids {user}:ix {user}:r:<id> {user}:st {user}:u:eml:=ada@example.com {user}:z:age
    state = await client.hget("{user}:st", ada.id)  # the state line: 'age\t\t36\t\neml\t=ada@example.com\t\t'

    await client.aclose()
    return {"stored": stored, "keys": [key.replace(ada.id, "<id>") for key in keys], "state": state}
