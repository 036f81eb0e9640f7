"""Queries and relations: where, order_by, paging, select, include. Run by tests/test_relations.py."""

from __future__ import annotations

from typing import ClassVar

import redis.asyncio

from redis_orm_async import BelongsTo, Field, HasMany, Model, Schema, belongs_to, create_orm, has_many


class Author(Model):
    name: str = Field(lex=True)  # lex: startswith is answered by an index
    country: str = Field(index=True)  # equality index: a ZSET of ids per value, in id order
    posts: ClassVar[HasMany[Post]] = has_many("Post", foreign_key="author_id")


class Post(Model):
    title: str
    likes: int = Field(0, index=True)  # range index: a ZSET scored by likes
    author_id: str | None = None  # gets an equality index because Author.posts needs one
    author: ClassVar[BelongsTo[Author]] = belongs_to(Author, foreign_key="author_id")


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url)
    orm = create_orm(Schema([Author, Post]), client)
    authors, posts = orm.repo(Author), orm.repo(Post)
    ada = await authors.create(data={"name": "Ada", "country": "UK"})
    alan = await authors.create(data={"name": "Alan", "country": "UK"})
    await posts.create_many([
        {"title": "Notes", "likes": 40, "author_id": ada.id},
        {"title": "Engines", "likes": 12, "author_id": ada.id},
        {"title": "Machines", "likes": 30, "author_id": alan.id},
        {"title": "Draft", "likes": 0, "author_id": None},
    ])  # fmt: skip

    popular = await posts.find_many(
        where={"likes": {"gte": 10}, "OR": [{"author_id": ada.id}, {"likes": {"gt": 35}}]},
        order_by={"likes": "desc"},  # ties: by id, in the same direction
        take=2,
        include={"author": True},  # one batched read for all authors
    )
    uk = await authors.find_many(
        where={"country": "UK", "name": {"startswith": "A"}},
        order_by={"name": "asc"},
        include={"posts": {"where": {"likes": {"gt": 20}}, "select": {"title": True}}},
    )
    plan = posts.explain(where={"likes": {"gte": 10}}, order_by={"likes": "desc"}, take=2)
    print(plan)  # which index, whether it scans, round trips

    result = {
        "popular": [(p.title, p.author.name if p.author else None) for p in popular],
        "uk": {a.name: [p.title for p in a.posts] for a in uk},
        "liked": await posts.count(where={"likes": {"gt": 0}}),
        "strategy": plan.strategy,
    }
    await client.aclose()
    return result
