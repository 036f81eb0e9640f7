"""Checked by mypy --strict with the ``redis_orm_async.mypy`` plugin (tests/test_typing.py): the
dict form of queries, each accepted literal and each rejected one. A rejected line carries
``# type: ignore[orm-query]``, which strict mode reports as unused if the plugin accepts it.
pyright has no plugins: it accepts every line here (see docs/queries.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from redis_orm_async import Field, HasMany, Model, Repository, has_many


class Writer(Model):
    email: str = Field(unique=True)
    age: int = Field(index=True)
    prefs: dict[str, Any] | None = None
    books: ClassVar[HasMany[Book]] = has_many("Book", foreign_key="writer_id")


class Book(Model):
    writer_id: str
    title: str = ""
    stars: int = Field(0, index=True)


async def accepted(writers: Repository[Writer], where: dict[str, Any]) -> None:
    await writers.find_many(where={"age": {"gte": 3, "not": {"in": [4]}}, "OR": [{"email": "a"}, {"id": 1}]})
    await writers.find_many(where={"prefs": {"theme": "dark"}})  # a JSON field's dict is a value
    await writers.find_many(where=where)  # built elsewhere: checked at run time only
    await writers.find_many(order_by=[{"age": "desc"}, {"id": "asc"}], select={"email": True, "books": True})
    await writers.find_many(include={"books": {"where": {"stars": {"gt": 1}}, "order_by": {"stars": "desc"},
                                               "take": 3}})  # fmt: skip
    await writers.update({"email": "a"}, {"age": {"increment": 1}})
    await writers.create({"email": "a", "age": 1})
    await writers.create_many([{"email": "a", "age": 1}])
    await writers.upsert({"email": "a"}, create={"age": 1}, update={"age": {"set": 2}})
    await writers.count(where={"NOT": {"age": None}})


async def rejected(writers: Repository[Writer]) -> None:
    await writers.find_many(where={"emial": "a"})  # type: ignore[orm-query]
    await writers.find_many(where={"age": {"greater": 3}})  # type: ignore[orm-query]
    await writers.find_many(where={"OR": [{"agee": 3}]})  # type: ignore[orm-query]
    await writers.find_many(where={"books": {"title": "x"}})  # type: ignore[orm-query]
    await writers.find_many(order_by={"nmae": "asc"})  # type: ignore[orm-query]
    await writers.find_many(order_by={"age": "sideways"})  # type: ignore[orm-query]
    await writers.find_many(select={"emali": True})  # type: ignore[orm-query]
    await writers.find_many(include={"bookz": True})  # type: ignore[orm-query]
    await writers.find_many(include={"books": {"where": {"starz": 1}}})  # type: ignore[orm-query]
    await writers.find_many(include={"books": {"limit": 1}})  # type: ignore[orm-query]
    await writers.update({"email": "a"}, {"verifed": True})  # type: ignore[orm-query]
    await writers.update_many(where={}, data={"age": {"add": 1}})  # type: ignore[orm-query]
    await writers.create({"email": "a", "agee": 1})  # type: ignore[orm-query]
    await writers.create_many([{"email": "a", "aeg": 1}])  # type: ignore[orm-query]
    await writers.delete_many(where={"emial": "a"})  # type: ignore[orm-query]
