"""The same app code on Redis Cluster. Run by tests/test_docs.py on a local cluster."""

from __future__ import annotations

import redis.asyncio

from redis_orm_async import Field, Model, Schema, create_orm


class Order(Model, key_prefix="order"):  # every key of Order is in one slot: {order}
    number: int = Field(unique=True)
    status: str = Field("open", index=True)


async def main(host: str, port: int) -> dict[str, object]:
    client = redis.asyncio.RedisCluster(host=host, port=port)  # any node: it learns the rest
    orm = create_orm(Schema([Order]), client)
    orders = orm.repo(Order)
    await orders.create_many([{"number": n} for n in range(10)])
    await orders.update(where={"number": 3}, data={"status": "paid"})
    paid = await orders.count(where={"status": "paid"})
    async with orm.transaction() as tx:  # one model's keys, one slot: allowed on a cluster
        tx.repo(Order).delete(where={"number": 0})
        tx.repo(Order).update(where={"number": 1}, data={"status": "paid"})
    await orm.connect()
    result = {"paid": paid, "now": await orders.count(where={"status": "paid"}),
              "cluster": orm.capabilities.supports_cluster}  # fmt: skip
    await client.aclose()
    return result
