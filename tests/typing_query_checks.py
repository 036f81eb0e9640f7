"""Checked by mypy --strict in tests/test_relations.py: the types of queries and relations."""

from __future__ import annotations

from typing import ClassVar, assert_type

import redis.asyncio

from redis_orm_async import (
    BelongsTo,
    Field,
    HasMany,
    HasOne,
    ManyToMany,
    Model,
    Plan,
    Schema,
    belongs_to,
    create_orm,
    has_many,
    has_one,
    many_to_many,
)


class Author(Model):
    name: str = Field(index=True)
    posts: ClassVar[HasMany[Article]] = has_many("Article", foreign_key="author_id")
    bio: ClassVar[HasOne[Bio]] = has_one("Bio", foreign_key="author_id")
    groups: ClassVar[ManyToMany[Group]] = many_to_many(
        "Group", through="Seat", source_key="author_id", target_key="group_id"
    )


class Article(Model):
    author_id: str | None = None
    author: ClassVar[BelongsTo[Author]] = belongs_to(Author, foreign_key="author_id")


class Bio(Model):
    author_id: str


class Group(Model):
    name: str


class Seat(Model):
    author_id: str
    group_id: str


async def typed_queries(client: redis.asyncio.Redis) -> None:
    orm = create_orm(Schema([Author, Article, Bio, Group, Seat]), client)
    authors = orm.repo(Author)
    assert_type(
        await authors.find_many(where={"name": "ada"}, order_by={"name": "asc"}, take=5), list[Author]
    )
    assert_type(await authors.find_first(where={"name": {"startswith": "a"}}), Author | None)
    assert_type(await authors.count(where={"name": "ada"}), int)
    assert_type(authors.explain(where={"name": "ada"}), Plan)
    found = await authors.find_unique({"name": "ada"}, include={"posts": True, "bio": True, "groups": True})
    if found is not None:
        assert_type(found.posts, list[Article])
        assert_type(found.bio, Bio | None)
        assert_type(found.groups, list[Group])
        for article in found.posts:
            assert_type(article.author, Author | None)
    assert_type(Author.posts, HasMany[Article])
