"""Upstash: the quickstart's app code with only the URL swapped. Run by tests/test_docs.py."""

from __future__ import annotations

from redis_orm_async import Field, Model, Schema, UniqueConstraintError, create_orm


class User(Model):  # the same model as on redis-py
    email: str = Field(unique=True)
    age: int = Field(index=True)
    name: str | None = None


async def main(url: str, token: str) -> dict[str, object]:
    # the REST URL and token (or UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN, read when
    # no url is given); the ORM builds the upstash_redis client and owns it
    orm = create_orm(Schema([User]), url=url, token=token)
    users = orm.repo(User)  # the same Repository[User], the same calls

    ada = await users.create(data={"email": "ada@example.com", "age": 36})
    same = await users.find_unique(where={"email": "ada@example.com"})
    older = await users.update(where={"id": ada.id}, data={"age": {"increment": 1}})
    try:
        await users.create(data={"email": "ada@example.com", "age": 1})
    except UniqueConstraintError as exc:
        violated = exc.constraint  # "email"

    async with orm.transaction() as tx:  # queued writes land together, in one atomic script
        tx.repo(User).create(data={"email": "bob@example.com", "age": 41})
        tx.repo(User).delete(where={"id": ada.id})

    guard = orm.capabilities.optimistic_guard  # "script": every write is one atomic script call
    result: dict[str, object] = {
        "same": same == ada, "age": older.age if older else None, "violated": violated,
        "count": await users.count(), "guard": guard,
    }  # fmt: skip
    await orm.aclose()
    return result
