"""Checked by mypy --strict and by pyright in tests/test_typing.py: field expressions, typed
projections and streams, each accepted form and each rejected one.

A rejected line carries ``# type: ignore[code]`` and ``# pyright: ignore[rule]``: mypy (strict
warns about unused ignores) and pyright (``reportUnnecessaryTypeIgnoreComment``, with
``# type: ignore`` comments switched off for it) each fail the test if they accept that line.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict, assert_type

from pydantic import BaseModel

from redis_orm_async import (
    Condition,
    Field,
    HasMany,
    Model,
    Repository,
    and_,
    asc,
    col,
    contains,
    desc,
    has_many,
    in_,
    not_,
    or_,
    startswith,
)


class Author(Model):
    email: str = Field(unique=True)
    age: int = Field(index=True)
    status: str = Field("active", index=True)
    name: str | None = None
    posts: ClassVar[HasMany[Post]] = has_many("Post", foreign_key="author_id")


class Post(Model):
    author_id: str
    likes: int = Field(0, index=True)


class Contact(BaseModel):
    """A typed projection: only the fields it names are read, and it is what comes back."""

    email: str
    age: int


class ContactRow(TypedDict):
    email: str


async def accepted(authors: Repository[Author]) -> None:
    adults = await authors.find_many(
        Author.age >= 10, Author.status == "active", order_by=desc(Author.age), take=10
    )
    assert_type(adults, list[Author])
    assert_type(await authors.find_first(Author.email == "a@x.io"), Author | None)
    assert_type(await authors.find_one(Author.email == "a@x.io"), Author | None)
    assert_type(await authors.count(Author.age < 30), int)
    assert_type(await authors.update_many(Author.age > 90, {"status": "old"}), int)
    assert_type(await authors.delete_many(Author.status == "banned"), int)
    assert_type(await authors.update(Author.age > 90, {"status": "old"}), Author | None)
    assert_type(await authors.delete(Author.status == "banned"), Author | None)
    combined = (Author.age >= 10) & (Author.status == "active") | (Author.name != None)  # noqa: E711
    assert_type(combined, bool)
    assert_type(and_(Author.age > 1, or_(Author.age < 0, not_(Author.status == "x"))), Condition)
    assert_type(~col(Author.age).in_([1, 2]), Condition)
    await authors.find_many(combined, col(Author.age).in_([1, 2, None]), in_(Author.age, [3]))
    await authors.find_many(col(Author.name).contains("a"), contains(Author.email, "@x"))
    await authors.find_many(Author.email.startswith("a"), startswith(Author.email, "b"))
    await authors.find_many(col(Author.age).range(0, 100, start=5, num=10))
    await authors.find_many(order_by=[col(Author.age).desc(), asc(Author.email)])
    await authors.find_many(where=Author.age > 3, include={"posts": {"where": Post.likes > 2, "take": 3}})
    assert_type(await authors.find_many(select=Contact), list[Contact])
    assert_type(await authors.find_many(Author.age > 3, select=ContactRow), list[ContactRow])
    assert_type(await authors.find_first(select=Contact), Contact | None)
    assert_type(await authors.find_unique({"email": {"eq": "a@x.io"}}, select=Contact), Contact | None)
    assert_type(await authors.create({"email": "a@x.io", "age": 3}, select=Contact), Contact)
    assert_type(
        await authors.create_many([{"email": "a@x.io", "age": 3}], select=ContactRow), list[ContactRow]
    )
    assert_type(await authors.find_many(select={"email": True}), list[Any])
    async for author in authors.stream(Author.age >= 18, batch=500):
        assert_type(author, Author)
    async for contact in authors.stream(where={"age": {"gte": 18}}, select=Contact):
        assert_type(contact, Contact)


async def rejected(authors: Repository[Author]) -> None:
    await authors.find_many(Author.agee >= 10)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    await authors.find_many(order_by=desc(Author.nmae))  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    await authors.find_many(Author.age >= "ten")  # type: ignore[operator]  # pyright: ignore[reportOperatorIssue]
    await authors.find_many(Author.age == "ten")  # type: ignore[comparison-overlap]  # pyright: ignore[reportUnnecessaryComparison]
    await authors.find_many(col(Author.age).in_(["ten"]))  # type: ignore[list-item]  # pyright: ignore[reportArgumentType]
    await authors.find_many(col(Author.age).range("a", "z"))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    await authors.find_many(col(Author.email).contains(3))  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    # ``~`` on a plain comparison is ``~bool`` (an int) to a checker: write not_(...) instead
    await authors.find_many(~(Author.age > 1))  # type: ignore[call-overload]  # pyright: ignore[reportArgumentType]
    found = await authors.find_many(Author.age > 1)
    print(found[0].nmae)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    contacts = await authors.find_many(select=Contact)
    print(contacts[0].status)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
    rows = await authors.find_many(select=ContactRow)
    print(rows[0]["age"])  # type: ignore[typeddict-item]  # pyright: ignore[reportGeneralTypeIssues]
    async for author in authors.stream(Author.age > 1):
        print(author.agee)  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]
