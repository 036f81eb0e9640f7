"""Schema evolution on data written by an older model: stored field names, fields added with a
default, fields removed, and indexes or uniques declared once records exist (refused with a clear
error until ``reindex`` has built them, never answered short)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pydantic
import pytest
import redis.asyncio as aioredis

from redis_orm_async import (
    Field,
    HasMany,
    IndexNotBuiltError,
    Model,
    Orm,
    OrmSession,
    QueryError,
    Schema,
    SchemaError,
    Transaction,
    UniqueConstraintError,
    ValidationError,
    has_many,
)

MakeOrm = Callable[..., Orm]


class Person(Model, key_prefix="person"):
    """redisca's ``email = Email(field='eml', index=True, unique=True)``."""

    email: str = Field(unique=True, stored_as="eml")
    age: int = Field(0, index=True, stored_as="a")
    name: str = Field("", lex=True, stored_as="n")
    city: str | None = Field(None, index=True, stored_as="c")


class Seat(Model, key_prefix="seat", unique_together=[("room", "number")]):
    room: str = Field(stored_as="r")
    number: int = Field(stored_as="no")
    holder: str | None = None


async def test_a_field_stored_under_another_name(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    orm = make_orm(Schema([Person, Seat]))
    people = orm.repo(Person)
    ada = await people.create(data={"email": "ada@x.io", "age": 36, "name": "Ada", "city": "London"})
    stored = await people.raw(where={"id": ada.id})
    assert stored == {"id": ada.id, "eml": "ada@x.io", "a": "36", "n": "Ada", "c": "London"}
    keys = orm.schema.meta(Person).keys
    assert await raw.exists(keys.unique("eml", ["ada@x.io"]), keys.range("a"), keys.lex("n")) == 3
    assert await raw.zscore(keys.equality("c", "London"), ada.id) is not None
    await people.create_many([{"email": f"p{n}@x.io", "age": n, "name": f"P{n}"} for n in range(10)])
    assert await people.find_unique(where={"email": "ada@x.io"}) == ada
    assert [p.age for p in await people.find_many(where={"age": {"gte": 8}}, order_by={"age": "desc"})] == [
        36,
        9,
        8,
    ]
    assert [p.name for p in await people.find_many(where={"name": {"startswith": "A"}})] == ["Ada"]
    assert await people.count(where={"city": "London"}) == 1
    picked = await people.find_many(where={"email": "p3@x.io"}, select={"email": True, "age": True})
    assert [(p.email, p.age) for p in picked] == [("p3@x.io", 3)]
    older = await people.update(where={"email": "ada@x.io"}, data={"age": {"increment": 1}, "city": None})
    assert older is not None and older.age == 37 and older.city is None
    assert await people.raw(where={"email": "ada@x.io"}) == {
        "id": ada.id,
        "eml": "ada@x.io",
        "a": "37",
        "n": "Ada",
    }
    with pytest.raises(UniqueConstraintError) as taken:
        await people.create(data={"email": "ada@x.io"})
    assert taken.value.constraint == "email", "errors name the attribute"
    with pytest.raises(QueryError, match="stored name, name the field by its attribute 'email'"):
        await people.find_many(where={"eml": "ada@x.io"})
    with pytest.raises(ValidationError, match="attribute 'age'"):
        await people.update(where={"id": ada.id}, data={"a": 1})
    assert await people.upsert(where={"email": "new@x.io"}, create={"age": 5}, update={}) is not None
    assert await people.update_many(where={"age": {"lt": 5}}, data={"city": "Paris"}) == 5
    assert await people.delete_many(where={"city": "Paris", "age": {"lt": 2}}) == 2
    seats = orm.repo(Seat)
    seat = await seats.create(data={"room": "A", "number": 1})
    assert await seats.find_unique(where={"room": "A", "number": 1}) == seat
    with pytest.raises(UniqueConstraintError) as both:
        await seats.create(data={"room": "A", "number": 1})
    assert both.value.constraint == "room+number"
    assert (await orm.audit(Person)).ok and (await orm.audit(Seat)).ok
    await orm.repair(Person)
    assert (await orm.audit(Person)).ok


def test_stored_names_are_checked_when_the_schema_is_built() -> None:
    class Twice(Model):
        a: str = Field(stored_as="x")
        b: str = Field(stored_as="x")

    class Clash(Model):
        a: str = Field(stored_as="b")
        b: str = ""

    class Odd(Model):
        a: str = Field(stored_as="a:b")

    for model, message in ((Twice, "which Twice.a is stored as too"), (Clash, "the name of another field"),
                           (Odd, "letters, digits and '_'")):  # fmt: skip
        with pytest.raises(SchemaError, match=message):
            Schema([model])


class AuthorV1(Model, key_prefix="author"):
    name: str
    country: str
    legacy: str = "old"


class BookV1(Model, key_prefix="book"):
    title: str
    author_id: str


class AuthorV2(Model, key_prefix="author"):
    """Version 2: a new index, a new unique, a new field with a default, ``legacy`` removed, a
    renamed attribute that keeps its stored name, and a new relation."""

    full_name: str = Field(unique=True, stored_as="name")
    country: str = Field(index=True)
    tier: str = "basic"
    score: int = 10
    books: ClassVar[HasMany[BookV2]] = has_many("BookV2", foreign_key="author_id")


class BookV2(Model, key_prefix="book"):
    title: str
    author_id: str


async def seed_v1(orm: Orm) -> list[AuthorV1]:
    authors = await orm.repo(AuthorV1).create_many(
        [{"name": f"author {n}", "country": ("UK", "FR", "DE")[n % 3]} for n in range(30)]
    )
    await orm.repo(BookV1).create_many(
        [{"title": f"book {n}", "author_id": authors[n % 30].id} for n in range(60)]
    )
    return authors


async def test_old_records_read_under_the_new_model(make_orm: MakeOrm, raw: aioredis.Redis) -> None:
    old = make_orm(Schema([AuthorV1, BookV1]))
    written = await seed_v1(old)
    new = make_orm(Schema([AuthorV2, BookV2]))
    authors = new.repo(AuthorV2)
    await new.reindex(AuthorV2)
    await new.reindex(BookV2)
    first = await authors.find_unique(where={"id": written[0].id})
    assert first is not None
    assert (first.full_name, first.country, first.tier, first.score) == ("author 0", "UK", "basic", 10)
    assert "legacy" not in first.model_dump(), "a removed field is ignored"
    updated = await authors.update(where={"full_name": "author 0"}, data={"tier": "gold"})
    assert updated is not None and updated.tier == "gold" and updated.score == 10
    stored = await authors.raw(where={"id": written[0].id})
    assert stored is not None and stored["legacy"] == "old", "an update leaves fields it does not know alone"
    assert stored["score"] == "10", "reindex wrote the new field's default into the old records"
    assert await authors.count(where={"score": 10, "tier": "basic"}) == 29, "queries agree with reads"
    by_country = await authors.find_many(where={"country": "FR"}, include={"books": True})
    assert len(by_country) == 10 and all(len(a.books) == 2 for a in by_country)
    again = await old.repo(AuthorV1).find_unique(where={"id": written[0].id})
    assert again is not None and again.legacy == "old", "the old model still reads what the new one wrote"


async def test_a_query_that_needs_an_index_not_yet_built_is_refused_until_reindex(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    old = make_orm(Schema([AuthorV1, BookV1]))
    written = await seed_v1(old)
    new = make_orm(Schema([AuthorV2, BookV2]))
    authors = new.repo(AuthorV2)
    assert len(await authors.find_many()) == 30, "reading every record needs no index"
    assert await authors.find_unique(where={"id": written[1].id}) is not None
    refusals = [
        authors.find_many(where={"country": "UK"}),
        authors.find_first(where={"country": "UK"}),
        authors.count(where={"country": "UK"}),
        authors.find_unique(where={"full_name": "author 1"}),
        authors.exists(where={"full_name": "author 1"}),
        authors.upsert(where={"full_name": "author 1"}, create={"country": "UK"}, update={}),
        authors.update(where={"full_name": "author 1"}, data={"tier": "x"}),
        authors.delete(where={"full_name": "author 1"}),
        authors.update_many(where={"country": "UK"}, data={"tier": "x"}),
        authors.delete_many(where={"country": "UK"}),
        authors.find_many(include={"books": True}),
    ]
    for call in refusals:
        with pytest.raises(IndexNotBuiltError, match="reindex") as refused:
            await call
        assert refused.value.code == "index_not_built" and isinstance(refused.value, QueryError)

    async def in_session(call: Callable[[OrmSession], Awaitable[Any]]) -> None:
        async with new.session() as session:
            await call(session)

    async def in_transaction(queue: Callable[[Transaction], Any]) -> None:
        async with new.transaction() as tx:
            queue(tx)

    units_of_work = [
        in_session(lambda s: s.find_unique(AuthorV2, {"full_name": "author 1"})),
        in_session(lambda s: s.find_many(AuthorV2, where={"country": "UK"})),
        in_transaction(
            lambda tx: tx.repo(AuthorV2).update(where={"full_name": "author 1"}, data={"tier": "x"})
        ),
        in_transaction(lambda tx: tx.repo(AuthorV2).delete(where={"full_name": "author 1"})),
    ]
    for unit in units_of_work:
        with pytest.raises(IndexNotBuiltError, match="reindex"):
            await unit
    assert (await authors.find_unique(where={"id": written[1].id})).tier == "basic"  # type: ignore[union-attr]
    with pytest.raises(IndexNotBuiltError) as named:
        await authors.find_many(where={"country": "UK"})
    assert named.value.meta == {"model": "AuthorV2", "indexes": ["i:country"]}
    assert "equality index on country" in named.value.message
    with pytest.raises(IndexNotBuiltError, match="BookV2"):
        await new.repo(BookV2).find_many(where={"author_id": written[0].id})
    assert await authors.count() == 30, "nothing was written by the refusals"
    report = await new.reindex(AuthorV2)
    assert report.ok and report.records == 30
    assert sorted(report.indexes) == ["d:score", "d:tier", "i:country", "u:name"]
    assert len(await authors.find_many(where={"country": "UK"})) == 10
    assert await authors.count(where={"country": "UK"}) == 10
    assert (await authors.find_unique(where={"full_name": "author 1"})) is not None
    with pytest.raises(UniqueConstraintError):
        await authors.create(data={"full_name": "author 1", "country": "UK"})
    await new.reindex(BookV2)
    loaded = await authors.find_many(where={"country": "DE"}, include={"books": True})
    assert sorted(len(a.books) for a in loaded) == [2] * 10
    assert (await new.audit(AuthorV2)).ok and (await new.audit(BookV2)).ok


async def test_a_new_model_marks_its_indexes_built_with_its_first_record(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    orm = make_orm(Schema([AuthorV2, BookV2]))
    authors = orm.repo(AuthorV2)
    assert await authors.find_many(where={"country": "UK"}) == [], "an empty model needs nothing built"
    await authors.create(data={"full_name": "a", "country": "UK"})
    marker = await raw.hgetall(orm.schema.meta(AuthorV2).keys.built())
    assert set(marker) == {"~since", "i:country", "u:name"}
    assert [a.full_name for a in await authors.find_many(where={"country": "UK"})] == ["a"]
    await authors.delete(where={"full_name": "a"})
    assert await raw.exists(orm.schema.meta(AuthorV2).keys.built()) == 0, (
        "the marker leaves with the last record"
    )


async def test_repair_marks_what_it_rebuilt_and_records_without_a_marker_are_trusted(
    make_orm: MakeOrm, raw: aioredis.Redis
) -> None:
    old = make_orm(Schema([AuthorV1, BookV1]))
    await seed_v1(old)
    new = make_orm(Schema([AuthorV2, BookV2]))
    await new.repair(AuthorV2)
    assert await new.repo(AuthorV2).count(where={"country": "FR"}) == 10
    await raw.delete(new.schema.meta(AuthorV2).keys.built())
    fresh = make_orm(Schema([AuthorV2, BookV2]))
    assert await fresh.repo(AuthorV2).count(where={"country": "FR"}) == 10, (
        "data written before markers existed is trusted"
    )


class PersonCard(pydantic.BaseModel):
    email: str
    age: int


async def test_stored_names_behind_expressions_projections_and_streams(make_orm: MakeOrm) -> None:
    people = make_orm(Schema([Person, Seat])).repo(Person)
    await people.create_many([{"email": f"s{n}@x.io", "age": n, "name": f"S{n}"} for n in range(6)])
    older = await people.find_many(Person.age >= 4, order_by={"age": "asc"})  # type: ignore[operator]
    assert [p.email for p in older] == ["s4@x.io", "s5@x.io"]
    cards = await people.find_many(where={"age": {"lt": 2}}, select=PersonCard)
    assert [(c.email, c.age) for c in cards] == [("s0@x.io", 0), ("s1@x.io", 1)]
    streamed = [p.age async for p in people.stream(where={"name": {"startswith": "S"}}, batch=2)]
    assert sorted(streamed) == list(range(6))
