"""Quickstart: a model, its repository, and a unit of work. Run by tests/test_docs.py."""

from __future__ import annotations

from redis_orm_async import Field, Model, Schema, UniqueConstraintError, create_orm


class User(Model):  # no `id` declared: a generated, time-sortable string id (ULID)
    email: str = Field(unique=True)
    age: int = Field(index=True)
    name: str | None = None


async def main(url: str) -> dict[str, object]:
    orm = create_orm(Schema([User]), url=url)  # "redis://localhost:6379": the ORM owns its client
    users = orm.repo(User)  # Repository[User]

    ada = await users.create(data={"email": "ada@example.com", "age": 36})
    same = await users.find_unique(where={"email": "ada@example.com"})
    older = await users.update(where={"id": ada.id}, data={"age": {"increment": 1}})
    try:
        await users.create(data={"email": "ada@example.com", "age": 1})
    except UniqueConstraintError as exc:
        violated = exc.constraint  # "email"

    async with orm.transaction() as tx:  # queued writes land together, in one atomic step, at exit
        tx.repo(User).create(data={"email": "bob@example.com", "age": 41})
        tx.repo(User).delete(where={"id": ada.id})

    result = {"same": same == ada, "age": older.age if older else None, "violated": violated,
              "count": await users.count()}  # fmt: skip
    await orm.aclose()  # closes the client it built (or: async with create_orm(...) as orm)
    return result
