"""Handling errors: one root, stable codes, a retryable flag. Run by tests/test_docs.py."""

from __future__ import annotations

import anyio
import redis.asyncio

from redis_orm_async import (
    DataValidationError,
    Field,
    Model,
    NotFoundError,
    OrmError,
    Schema,
    UniqueConstraintError,
    create_orm,
)


class Account(Model, key_prefix="acct"):
    email: str = Field(unique=True)
    credits: int = 0


async def with_retries(attempt: int = 0) -> None:
    """What a worker does with a retryable error: wait a little, try again."""
    await anyio.sleep(0.01 * 2**attempt)


async def main(url: str) -> dict[str, object]:
    client = redis.asyncio.Redis.from_url(url)
    accounts = create_orm(Schema([Account]), client).repo(Account)
    codes: list[str] = []
    await accounts.create(data={"email": "ada@example.com"})
    for call in (
        accounts.create(data={"email": "ada@example.com"}),  # taken
        accounts.create(data={"email": "bob@example.com", "credits": "lots"}),  # not an int
        accounts.find_unique_or_raise(where={"email": "nobody@example.com"}),  # must exist
    ):
        try:
            await call
        except UniqueConstraintError as exc:
            codes.append(f"{exc.code}:{exc.constraint}")
        except DataValidationError as exc:
            codes.append(exc.code)
        except NotFoundError as exc:
            codes.append(exc.code)
        except OrmError as exc:  # everything else the ORM raises, redis-py's errors included
            if not exc.retryable:
                raise
            await with_retries()
    await client.aclose()
    return {"codes": codes}
