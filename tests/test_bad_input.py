"""The bad-input matrix: every field kind x every where operator x every write method, on every backend.

A bad value must be refused with an ``OrmError`` subclass (never another exception), promptly and
before any I/O, writing nothing and losing nothing (the keyspace under the model's prefix is
compared with the one before), with a message that names the model and the field and never quotes
a long value whole. A value that is legitimately storable (a 10**400 int, an infinity in a
range-indexed float, an instant in year 1) must instead round-trip exactly, be found by an equality
query, and leave a clean audit. A legitimate where must answer what Python answers over the same
records.

Hypothesis draws the values (a surrogate anywhere, huge ints of any size, edge instants at any
offset, megabytes of any character); each example runs the whole table, so every combination is
covered by every run. A case that fails is collected, and each test reports all of its failing
cases at once, one line each.
"""

from __future__ import annotations

import enum
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

import anyio
import pydantic
import pytest
import redis.asyncio as aioredis
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, EmailStr, TypeAdapter

from redis_orm_async import Field, Model, Orm, OrmError, Schema
from redis_orm_async._model.ids import new_ulid
from redis_orm_async._model.schema import MAX_LEX_LENGTH

MakeOrm = Callable[..., Orm]
REFUSED = object()
"""The expected outcome of an input the ORM must refuse."""


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: float
    label: str = ""


class Kinds(Model, key_prefix="kinds"):
    """One field of every kind, each with the index it can have; names say the kind and index."""

    text_eq: str | None = Field(None, index=True)
    text_lex: str | None = Field(None, lex=True)
    text_unique: str | None = Field(None, unique=True)
    int_range: int | None = Field(None, index=True)
    int_plain: int | None = None
    float_range: float | None = Field(None, index=True)
    float_plain: float | None = None
    bool_eq: bool | None = Field(None, index=True)
    dec_range: Decimal | None = Field(None, index=True, allow_inf_nan=True)
    dec_unique: Decimal | None = Field(None, unique=True, allow_inf_nan=True)
    dt_range: datetime | None = Field(None, index=True)
    dt_unique: datetime | None = Field(None, unique=True)
    day_range: date | None = Field(None, index=True)
    enum_eq: Color | None = Field(None, index=True)
    json_dict: dict[str, Any] | None = None
    json_list: list[Any] | None = None
    json_model: Point | None = None
    email_unique: EmailStr | None = Field(None, unique=True)
    raw_bytes: bytes | None = None


class Keyed(Model, key_prefix="keyed"):
    id: str
    tag: str | None = Field(None, index=True)


class Numbered(Model, key_prefix="numbered"):
    id: int
    tag: str | None = None


class Aliased(Model, key_prefix="aliased"):
    user_name: str = Field(alias="userName", index=True)
    level: int = Field(0, alias="lvl")


class AliasedId(Model, key_prefix="aliased_id"):
    """A generated id with an alias: a caller's id under the alias is still a supplied id."""

    id: str = pydantic.Field(default_factory=new_ulid, alias="_id")
    body: str = ""


SCHEMA = Schema([Kinds, Keyed, Numbered, Aliased, AliasedId])
PREFIXES = ("kinds", "keyed", "numbered", "aliased", "aliased_id")
FIELDS = tuple(name for name in Kinds.model_fields if name != "id")
ADAPTERS = {
    name: TypeAdapter(Annotated[info.annotation, *info.metadata])
    if info.metadata
    else TypeAdapter(info.annotation)
    for name, info in Kinds.model_fields.items()
}
TEXT_FIELDS = frozenset({"text_eq", "text_lex", "text_unique", "email_unique", "raw_bytes"})
JSON_FIELDS = frozenset({"json_dict", "json_list", "json_model"})
NUMBER_FIELDS = frozenset({"int_range", "int_plain", "float_range", "float_plain", "dec_range", "dec_unique"})
RANGE_FIELDS = TEXT_FIELDS | NUMBER_FIELDS | {"dt_range", "dt_unique", "day_range"}
NAN_REFUSED = frozenset({"float_range", "dec_range", "dec_unique"})
UNIQUE_FIELDS = ("text_unique", "dec_unique", "dt_unique", "email_unique")
OPERATORS = ("eq", "in", "not", "gt", "gte", "lt", "lte", "contains", "startswith")
DIGIT_LIMIT = 10**4300
"""Python parses ints of at most 4300 digits (``sys.get_int_max_str_digits``)."""

SEEDS: list[dict[str, Any]] = [
    {
        "text_eq": "alpha",
        "text_lex": "alpha",
        "text_unique": "u-1",
        "int_range": 1,
        "int_plain": 10**400,
        "float_range": 1.5,
        "float_plain": 0.5,
        "bool_eq": True,
        "dec_range": Decimal("1.10"),
        "dec_unique": Decimal("7"),
        "dt_range": datetime(2024, 1, 1, tzinfo=UTC),
        "dt_unique": datetime(2024, 1, 1, tzinfo=UTC),
        "day_range": date(2024, 1, 1),
        "enum_eq": Color.RED,
        "json_dict": {"k": 1},
        "json_list": [1],
        "json_model": Point(x=1.0),
        "email_unique": "a@example.com",
        "raw_bytes": b"abc",
    },
    {
        "text_eq": "beta",
        "text_lex": "beta",
        "text_unique": "u-2",
        "int_range": 10**400,
        "float_range": math.inf,
        "dec_range": Decimal("Infinity"),
        "dt_range": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
        "dec_unique": Decimal("8"),
        "dt_unique": datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=-5))),
        "email_unique": "b@example.com",
        "day_range": date.max,
        "bool_eq": False,
        "enum_eq": Color.BLUE,
    },
    {
        "text_eq": "gamma",
        "text_unique": "u-3",
        "int_range": 10**401,
        "float_range": -math.inf,
        "dec_range": Decimal(-(10**400)),
        "dt_range": datetime.max,
        "int_plain": -(10**400),
        "float_plain": math.nan,
    },
    {},
]
"""Records that exist before every case and must be unchanged after it; they hold legitimate
edge values (ints past the double range, infinities, instants in years 1 and 9999, nulls)."""

MEGABYTE = 2**20


def megabyte_of(unit: str) -> str:
    return unit * (MEGABYTE // len(unit.encode()))


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
OFFSETS = st.integers(1, 23 * 60 + 59).map(lambda minutes: timedelta(minutes=minutes))
SIGNS = st.sampled_from([1, -1])
CLASSES: dict[str, st.SearchStrategy[Any]] = {
    "nan": st.just(math.nan),
    "nan-decimal": st.sampled_from([Decimal("NaN"), Decimal("-NaN"), Decimal("sNaN")]),
    "inf": st.sampled_from([math.inf, -math.inf]),
    "inf-decimal": st.sampled_from([Decimal("Infinity"), Decimal("-Infinity")]),
    "huge-int": st.builds(lambda n, sign: n * sign, st.integers(2**1100, 10**4000), SIGNS),
    "too-many-digits": st.builds(lambda k, sign: sign * 10**k, st.integers(4300, 4400), SIGNS),
    "digit-string": st.integers(4301, 6000).map(lambda k: "7" * k),
    "surrogate": st.builds(lambda a, c, b: a + c + b, st.text(max_size=4), SURROGATES, st.text(max_size=4)),
    "long-surrogate": st.builds(lambda n, c: "a" * n + c, st.integers(300, 3000), SURROGATES),
    "bad-utf8": st.binary(max_size=8).map(lambda tail: b"\xff" + tail),
    "year-1": st.builds(
        lambda minutes, offset: (datetime.min + timedelta(minutes=minutes)).replace(tzinfo=timezone(offset)),
        st.integers(0, 60), OFFSETS,
    ),
    "year-9999": st.builds(
        lambda minutes, offset: (datetime.max - timedelta(minutes=minutes)).replace(tzinfo=timezone(-offset)),
        st.integers(0, 60), OFFSETS,
    ),
    "naive-edge": st.sampled_from([datetime.min, datetime.max]),
    "date-edge": st.sampled_from([date.min, date.max]),
    "megabyte": st.sampled_from(["x", "é", "😀", ":{*"]).map(megabyte_of),
    "wrong-type": st.sampled_from([object(), [1], {"x": 1}, 1j, frozenset({1})]),
}  # fmt: skip


def shapes(field: str, value: Any) -> list[Any]:
    """How a drawn value is fed to a field: as it is, and inside the field's JSON structure when
    it is a JSON value (a Decimal or a datetime in ``Any`` is written as a string, by design)."""
    if type(value) not in (float, int, str, bytes, object):
        return [value]
    if field == "json_dict":
        fed = [value, {"k": value}]
        return [*fed, {value: 1}] if isinstance(value, str) else fed
    if field == "json_list":
        return [value, [1, value]]
    if field == "json_model":
        return [value, {"x": value}, {"x": 1.0, "label": value}]
    return [value]


def lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def json_storable(value: Any) -> bool:
    """Standard JSON that reads back as it was written (the JSON codec's documented rule)."""
    if isinstance(value, BaseModel):
        return json_storable(value.__dict__)
    if isinstance(value, dict):
        return all(json_storable(key) and json_storable(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(json_storable(item) for item in value)
    if isinstance(value, str):
        return not lone_surrogate(value)
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) < DIGIT_LIMIT
    if isinstance(value, float):
        return math.isfinite(value)
    return False  # bytes (only undecodable ones are fed), objects JSON cannot hold


def storable(field: str, value: Any) -> bool:
    """The documented storage rules, applied to a value the field's type accepted."""
    if value is None:
        return True
    if field in JSON_FIELDS:
        return json_storable(value)
    if isinstance(value, str):
        return not lone_surrogate(value) and not (field == "text_lex" and len(value) > MAX_LEX_LENGTH)
    if isinstance(value, bytes):
        try:
            value.decode()
        except UnicodeDecodeError:
            return False
        return True
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) < DIGIT_LIMIT
    if field in NAN_REFUSED and isinstance(value, float | Decimal):
        return not value.is_nan() if isinstance(value, Decimal) else not math.isnan(value)
    return True


def expected(field: str, value: Any) -> Any:
    """The valid value a field stores for ``value``, or ``REFUSED``."""
    try:
        valid = ADAPTERS[field].validate_python(value)
    except pydantic.ValidationError:
        return REFUSED
    return valid if storable(field, valid) else REFUSED


def is_nan(value: Any) -> bool:
    if isinstance(value, Decimal):
        return value.is_nan()
    return isinstance(value, float) and math.isnan(value)


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN and requires datetimes to keep their offset."""
    if is_nan(a) or is_nan(b):
        return is_nan(a) and is_nan(b)
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    if isinstance(a, BaseModel) and isinstance(b, BaseModel):
        return type(a) is type(b) and same(a.__dict__, b.__dict__)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def whole(value: Any) -> list[str]:
    """Renderings of a long value that an error message must not contain."""
    if isinstance(value, str) and len(value) > 40:
        return [value, value[:200]]
    if isinstance(value, bytes) and len(value) > 40:
        return [repr(value)[:200]]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**60:
        return [str(value)[:200]] if abs(value) < DIGIT_LIMIT else []
    return []


def describe(value: Any) -> str:
    if isinstance(value, str | bytes) and len(value) > 30:
        return f"{type(value).__name__}[{len(value)}] {value[:12]!r}..."
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"int of {len(str(abs(value))) if abs(value) < DIGIT_LIMIT else '4300+'} digits"
    if isinstance(value, dict | list):
        return "/".join(describe(item) for item in (value.values() if isinstance(value, dict) else value))
    return repr(value)[:60]


async def keyspace(raw: aioredis.Redis) -> dict[str, Any]:
    """Every key of the matrix's models with its type, content and whether it expires."""
    keys = sorted(
        [key for prefix in PREFIXES async for key in raw.scan_iter(match=f"*{{{prefix}}}*", count=1000)]
    )
    if not keys:
        return {}
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
    kinds = await pipe.execute()
    reads = {"hash": "hgetall", "zset": "zrange", "string": "get", "set": "smembers"}
    pipe = raw.pipeline(transaction=False)
    for key, kind in zip(keys, kinds[::2], strict=True):
        if kind == "zset":
            pipe.zrange(key, 0, -1, withscores=True)
        else:
            getattr(pipe, reads.get(kind, "exists"))(key)
    contents = await pipe.execute()
    return {
        key: (kind, sorted(content) if kind == "set" else content, ttl > 0)
        for key, kind, ttl, content in zip(keys, kinds[::2], kinds[1::2], contents, strict=True)
    }


async def restore(raw: aioredis.Redis, snapshot: dict[str, Any]) -> None:
    """Put the keyspace back as it was, after a case that wrongly wrote or deleted something."""
    for key in await keyspace(raw):
        await raw.delete(key)
    for key, (kind, content, _) in snapshot.items():
        if kind == "hash":
            await raw.hset(key, mapping=content)
        elif kind == "zset":
            await raw.zadd(key, dict(content))
        elif kind == "string":
            await raw.set(key, content)
        elif kind == "set":
            await raw.sadd(key, *content)


class Matrix:
    """Runs cases against one ORM and collects every failing one."""

    def __init__(self, orm: Orm, raw: aioredis.Redis, backend: str) -> None:
        self.orm = orm
        self.raw = raw
        self.backend = backend
        self.repo = orm.repo(Kinds)
        self.problems: list[str] = []
        self.baseline: dict[str, Any] = {}
        self.seeds: list[Kinds] = []
        self.cases = 0
        self.keys = itertools.count()
        self.counts: dict[str, int] = {"refused": 0, "stored": 0, "answered": 0}

    async def seed(self) -> None:
        self.seeds = [await self.repo.create(data=data) for data in SEEDS]
        await self.orm.repo(Keyed).create(data={"id": "k-1", "tag": "t"})
        await self.orm.repo(Numbered).create(data={"id": 1, "tag": "t"})
        self.baseline = await keyspace(self.raw)

    def fail(self, label: str, problem: str) -> None:
        self.problems.append(f"[{self.backend}] {label}: {problem}")

    def report(self) -> None:
        assert self.cases > 0
        assert not self.problems, f"{len(self.problems)} failing cases:\n" + "\n".join(self.problems)

    async def settle(self, label: str, io: bool, quiet: bool = False) -> None:
        """Nothing written and nothing lost: the keyspace is the baseline (put back if not)."""
        if not io:
            return
        now = await keyspace(self.raw)
        if now != self.baseline:
            if quiet:
                await restore(self.raw, self.baseline)
                return
            changed = sorted(set(now) ^ set(self.baseline)) or [k for k in now if now[k] != self.baseline[k]]
            self.fail(label, f"the keyspace changed: {[key[:60] for key in changed[:4]]}")
            await restore(self.raw, self.baseline)

    async def attempt(self, call: Callable[[], Awaitable[Any]]) -> tuple[Any, BaseException | None, bool]:
        """Run one call with a deadline; the result or the exception, and whether it did I/O."""
        before = self.orm.backend.stats.snapshot()
        result: Any = None
        error: BaseException | None = None
        try:
            with anyio.fail_after(30):
                result = await call()
        except Exception as exc:
            error = exc
        return result, error, self.orm.backend.stats.snapshot() != before

    async def refused(
        self, label: str, call: Callable[[], Awaitable[Any]], value: Any, names: tuple[str, ...] = ()
    ) -> None:
        self.cases += 1
        self.counts["refused"] += 1
        result, error, io = await self.attempt(call)
        if error is None:
            self.fail(label, f"accepted, returned {describe(result)}")
        elif isinstance(error, TimeoutError):
            self.fail(label, "hung")
        elif not isinstance(error, OrmError):
            self.fail(label, f"raised {type(error).__name__}: {str(error)[:120]}")
        else:
            message = str(error)
            if any(text in message for text in whole(value)):
                self.fail(label, f"{type(error).__name__} quotes the whole value")
            missing = [name for name in names if name not in message]
            if missing:
                self.fail(label, f"{type(error).__name__} does not name {missing}: {message[:160]!r}")
            if io:
                self.fail(label, f"{type(error).__name__} raised only after I/O: {message[:100]!r}")
        await self.settle(label, io, quiet=error is None)

    async def stored(
        self, label: str, call: Callable[[], Awaitable[Any]], field: str, valid: Any, created: list[str]
    ) -> None:
        """A storable value: written, read back exactly, found by equality, then deleted cleanly.

        ``created`` lists the ids the call wrote besides the one it returns."""
        self.cases += 1
        self.counts["stored"] += 1
        result, error, _ = await self.attempt(call)
        if error is not None:
            self.fail(label, f"refused a storable value: {type(error).__name__}: {str(error)[:160]}")
        else:
            ident = result.id if isinstance(result, Kinds) else created[0]
            created = [other for other in created if other != ident]
            found = await self.repo.find_unique(where={"id": ident})
            if found is None or not same(getattr(found, field), valid):
                shown = None if found is None else describe(getattr(found, field))
                self.fail(label, f"read back {shown}, not {describe(valid)}")
            elif field not in JSON_FIELDS and not is_nan(valid):
                hits = await self.repo.find_many(where={field: valid})
                if ident not in [hit.id for hit in hits]:
                    self.fail(label, "not found by an equality query on its own value")
            created.append(ident)
        for ident in created:
            await self.repo.delete(where={"id": ident})
        await self.settle(label, True)

    async def answered(self, label: str, call: Callable[[], Awaitable[Any]], wanted: Any) -> None:
        """A legitimate read or bulk write: it answers ``wanted`` and writes nothing."""
        self.cases += 1
        self.counts["answered"] += 1
        result, error, io = await self.attempt(call)
        if error is not None:
            self.fail(label, f"refused a valid query: {type(error).__name__}: {str(error)[:160]}")
        elif result != wanted:
            self.fail(label, f"answered {describe(result)}, Python answers {describe(wanted)}")
        await self.settle(label, io)


def operand_ok(field: str, op: str, value: Any) -> Any:
    """The valid operand of one where operator, or ``REFUSED`` (the where rules of ``parse.py``)."""
    if op in ("contains", "startswith"):
        ok = field in TEXT_FIELDS and isinstance(value, str) and not lone_surrogate(value)
        return value if ok else REFUSED
    if op in ("gt", "gte", "lt", "lte"):
        if field not in RANGE_FIELDS or value is None:
            return REFUSED
        if field in TEXT_FIELDS:
            return value if isinstance(value, str) and not lone_surrogate(value) else REFUSED
    if value is None:
        return None
    valid = expected(field, value)
    if valid is REFUSED or is_nan(valid):
        return REFUSED
    return valid


def micros(value: datetime) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def order_key(value: Any) -> Any:
    if isinstance(value, datetime):
        return micros(value)
    if isinstance(value, bytes):
        return value.decode()
    return value


def equal(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, datetime) and isinstance(wanted, datetime):
        return (stored.tzinfo is None) == (wanted.tzinfo is None) and stored == wanted
    return same(stored, wanted)


def python_match(record: Kinds, field: str, op: str, operand: Any) -> bool:
    """The where semantics documented in ``parse.py``, evaluated on Python values."""
    value = getattr(record, field)
    if op in ("eq", "in"):
        return value is None if operand is None else value is not None and equal(value, operand)
    if op == "not":
        return not python_match(record, field, "eq", operand)
    if value is None:
        return False
    if op == "contains":
        return operand in order_key(value)
    if op == "startswith":
        return bool(order_key(value).startswith(operand))
    left, right = order_key(value), order_key(operand)
    return bool({"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op])


def where_of(field: str, op: str, value: Any) -> dict[str, Any]:
    return {field: {op: [value] if op == "in" else value}}


WRAPPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "plain": lambda where: where,
    "AND": lambda where: {"AND": [where, {"id": {"not": "no-such-id"}}]},
    "OR": lambda where: {"OR": [where, {"id": "no-such-id"}]},
    "NOT": lambda where: {"NOT": [where]},
}


def drawn_values(data: st.DataObject) -> Iterator[tuple[str, Any]]:
    for name, strategy in CLASSES.items():
        yield name, data.draw(strategy, label=name)


NO_SHRINK = settings(max_examples=1, phases=[Phase.explicit, Phase.generate], database=None)
DATA_METHODS = ["create", "create_many", "update", "update_many", "upsert_create", "upsert_update",
                "tx_create", "tx_update"]  # fmt: skip


def data_call(
    matrix: Matrix, method: str, field: str, fed: Any
) -> tuple[Callable[[], Awaitable[Any]], list[str]]:
    """The call that writes ``{field: fed}`` with one write method, and the ids it creates on the
    way (a fresh record to update when the value is storable; a refused one targets a seed)."""
    repo = matrix.repo
    created: list[str] = []
    data = {field: fed}
    storable_value = expected(field, fed) is not REFUSED

    async def target() -> str:
        if not storable_value:
            return str(matrix.seeds[0].text_unique)
        record = await repo.create(data={"text_eq": "target", "text_unique": f"target-{next(matrix.keys)}"})
        created.append(record.id)
        return str(record.text_unique)

    async def call() -> Any:
        if method == "create":
            return await repo.create(data=data)
        if method == "create_many":
            made = await repo.create_many([{"text_eq": "many"}, data])
            created.append(made[0].id)
            return made[1]
        if method == "tx_create":
            async with matrix.orm.transaction() as tx:
                return tx.repo(Kinds).create(data=data)
        if method == "upsert_create":
            key = f"upsert-{next(matrix.keys)}"
            return await repo.upsert(where={"text_unique": key}, create=data, update={})
        key = await target()
        where = {"text_unique": key}
        if method == "update":
            return await repo.update(where=where, data=data)
        if method == "update_many":
            return await repo.update_many(where=where, data=data)
        if method == "upsert_update":
            return await repo.upsert(where=where, create={}, update=data)
        assert method == "tx_update"
        async with matrix.orm.transaction() as tx:
            tx.repo(Kinds).update(where=where, data=data)
        return None

    return call, created


@pytest.mark.parametrize("method", DATA_METHODS)
@NO_SHRINK
@given(data=st.data())
async def test_bad_field_values_in_every_write_method(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str, method: str, data: st.DataObject
) -> None:
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await raw.flushdb()
    await matrix.seed()
    for kind, drawn in drawn_values(data):
        for field in FIELDS:
            if field == "text_unique" and method not in ("create", "create_many", "tx_create"):
                continue  # the updates and upserts here find their record by it
            for fed in shapes(field, drawn):
                label = f"{method} {field}={describe(fed)} ({kind})"
                valid = expected(field, fed)
                call, created = data_call(matrix, method, field, fed)
                if valid is REFUSED:
                    await matrix.refused(label, call, drawn, ("Kinds", field))
                else:
                    await matrix.stored(label, call, field, valid, created)
    audit = await matrix.orm.audit(Kinds)
    if not audit.ok:
        matrix.fail(method, f"audit: {audit}")
    matrix.report()


WHERE_METHODS = ["find_many", "count", "delete_many", "update_many"]


@pytest.mark.parametrize("method", WHERE_METHODS)
@NO_SHRINK
@given(data=st.data(), seed=st.integers(0, 2**32))
async def test_bad_where_values_for_every_operator(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str, method: str, data: st.DataObject, seed: int
) -> None:
    """Every field x operator x drawn value, plainly and inside AND/OR/NOT (one drawn per case).
    A bulk write's where is ANDed with an impossible id, so a valid one writes nothing."""
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await raw.flushdb()
    await matrix.seed()
    chooser = random.Random(seed)
    values = [*drawn_values(data), ("null", None)]
    for kind, drawn in values:
        for field in FIELDS:
            for op in OPERATORS:
                form = chooser.choice(list(WRAPPERS))
                where = WRAPPERS[form](where_of(field, op, drawn))
                label = f"{method} {form} {field} {op} {describe(drawn)} ({kind})"
                operand = operand_ok(field, op, drawn)
                if operand is REFUSED:
                    await matrix.refused(label, where_call(matrix, method, where), drawn, ("Kinds", field))
                    continue
                matched = [seed.id for seed in matrix.seeds if python_match(seed, field, op, operand)]
                if form == "NOT":
                    matched = [seed.id for seed in matrix.seeds if seed.id not in matched]
                wanted: Any = sorted(matched)
                if method == "count":
                    wanted = len(matched)
                elif method in ("delete_many", "update_many"):
                    wanted = 0
                await matrix.answered(label, where_call(matrix, method, where), wanted)
    matrix.report()


def where_call(matrix: Matrix, method: str, where: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    repo = matrix.repo

    async def call() -> Any:
        if method == "find_many":
            return sorted(record.id for record in await repo.find_many(where=where))
        if method == "count":
            return await repo.count(where=where)
        impossible = {"AND": [where, {"id": "no-such-id"}]}
        if method == "delete_many":
            return await repo.delete_many(where=impossible)
        return await repo.update_many(where=impossible, data={"text_eq": "changed"})

    return call


LOCATOR_METHODS = ["find_unique", "exists", "update", "delete", "touch", "upsert", "tx_update", "tx_delete"]


@pytest.mark.parametrize("method", LOCATOR_METHODS)
@NO_SHRINK
@given(data=st.data())
async def test_bad_unique_lookups_in_every_method(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str, method: str, data: st.DataObject
) -> None:
    """find_unique-style wheres (the id and every unique field) holding each drawn value."""
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await raw.flushdb()
    await matrix.seed()
    for kind, drawn in drawn_values(data):
        for field in ("id", *UNIQUE_FIELDS):
            valid = (
                expected(field, drawn) if field != "id" else (drawn if isinstance(drawn, str) else REFUSED)
            )
            if field == "id" and valid is not REFUSED and (lone_surrogate(drawn) or len(drawn) > 1024):
                valid = REFUSED
            if valid is not REFUSED and is_nan(valid):
                valid = REFUSED
            label = f"{method} {field}={describe(drawn)} ({kind})"
            call = locator_call(matrix, method, {field: drawn})
            if valid is REFUSED:
                await matrix.refused(label, call, drawn, ("Kinds", field) if field != "id" else ("Kinds",))
            elif method != "upsert":
                await matrix.answered(label, call, False if method == "exists" else None)
            elif field != "id":  # an upsert by a supplied id is the write engine's supplied-ids rule
                await matrix.stored(label, call, field, valid, [])
    matrix.report()


def locator_call(matrix: Matrix, method: str, where: dict[str, Any]) -> Callable[[], Awaitable[Any]]:
    repo = matrix.repo

    async def call() -> Any:
        if method == "find_unique":
            return await repo.find_unique(where=where)
        if method == "exists":
            return await repo.exists(where=where)
        if method == "update":
            return await repo.update(where=where, data={"text_eq": "changed"})
        if method == "delete":
            return await repo.delete(where=where)
        if method == "touch":
            return await repo.touch(where=where, ttl=timedelta(minutes=5))
        if method == "upsert":
            return await repo.upsert(where=where, create={"text_eq": "upserted"}, update={})
        async with matrix.orm.transaction() as tx:
            if method == "tx_update":
                tx.repo(Kinds).update(where=where, data={"text_eq": "changed"})
            else:
                tx.repo(Kinds).delete(where=where)
        return None

    return call


BAD_TTLS: list[Any] = [5, 2.5, "x", True, object(), timedelta(seconds=-1), timedelta(0)]
TTL_METHODS = ["create", "create_many", "update", "update_many", "upsert", "touch", "tx_create", "tx_update"]


@pytest.mark.parametrize("method", TTL_METHODS)
async def test_wrong_ttls_in_every_write_method(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str, method: str
) -> None:
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await matrix.seed()
    repo = matrix.repo
    where = {"id": matrix.seeds[0].id}
    for ttl in BAD_TTLS:

        async def call(ttl: Any = ttl) -> Any:
            if method == "create":
                return await repo.create(data={"text_eq": "t"}, ttl=ttl)
            if method == "create_many":
                return await repo.create_many([{"text_eq": "t"}], ttl=ttl)
            if method == "update":
                return await repo.update(where=where, data={"text_eq": "t"}, ttl=ttl)
            if method == "update_many":
                return await repo.update_many(where=where, data={"text_eq": "t"}, ttl=ttl)
            if method == "upsert":
                return await repo.upsert(where=where, create={}, update={"text_eq": "t"}, ttl=ttl)
            if method == "touch":
                return await repo.touch(where=where, ttl=ttl)
            async with matrix.orm.transaction() as tx:
                if method == "tx_create":
                    tx.repo(Kinds).create(data={"text_eq": "t"}, ttl=ttl)
                else:
                    tx.repo(Kinds).update(where=where, data={"text_eq": "t"}, ttl=ttl)
            return None

        await matrix.refused(f"{method} ttl={describe(ttl)}", call, ttl, ("Kinds", "ttl"))
    matrix.report()


def shape_cases(repo: Any, seed_id: str) -> list[tuple[str, Callable[[], Awaitable[Any]], tuple[str, ...]]]:
    """Unknown fields and operators, and arguments of the wrong shape, for every method."""
    where = {"id": seed_id}

    def case(label: str, make: Callable[[], Awaitable[Any]], *names: str) -> tuple[str, Any, tuple[str, ...]]:
        return label, make, ("Kinds", *names)

    return [
        case("create unknown field", lambda: repo.create(data={"nope": 1}), "nope"),
        case("create data not a mapping", lambda: repo.create(data=5)),
        case("create data None", lambda: repo.create(data=None)),
        case("create_many not a list", lambda: repo.create_many(5)),
        case("create_many item not a mapping", lambda: repo.create_many([5])),
        case("update unknown field", lambda: repo.update(where=where, data={"nope": 1}), "nope"),
        case("update data not a mapping", lambda: repo.update(where=where, data=[1])),
        case("update unknown number op", lambda: repo.update(where=where, data={"int_range": {"explode": 1}}),
             "int_range"),
        case("update increment by text",
             lambda: repo.update(where=where, data={"int_range": {"increment": "x"}}), "int_range"),
        case("update divide by zero", lambda: repo.update(where=where, data={"int_range": {"divide": 0}}),
             "int_range"),
        case("update increment by NaN",
             lambda: repo.update(where=where, data={"int_range": {"increment": math.nan}}), "int_range"),
        case("update float increment by NaN",
             lambda: repo.update(where=where, data={"float_range": {"increment": math.nan}}), "float_range"),
        case("update Decimal increment by NaN",
             lambda: repo.update(where=where, data={"dec_range": {"increment": math.nan}}), "dec_range"),
        case("update the id", lambda: repo.update(where=where, data={"id": "other"}), "id"),
        case("update_many unknown field", lambda: repo.update_many(where=where, data={"nope": 1}), "nope"),
        case("upsert create unknown field",
             lambda: repo.upsert(where={"text_unique": "fresh"}, create={"nope": 1}, update={}), "nope"),
        case("upsert update unknown field",
             lambda: repo.upsert(where={"text_unique": "fresh"}, create={}, update={"nope": 1}), "nope"),
        case("where unknown field", lambda: repo.find_many(where={"nope": 1}), "nope"),
        case("where unknown operator", lambda: repo.find_many(where={"text_eq": {"regex": "a"}}), "regex"),
        case("where not a mapping", lambda: repo.find_many(where=5)),
        case("where AND not a list", lambda: repo.find_many(where={"AND": 5}), "AND"),
        case("where in not a list", lambda: repo.find_many(where={"text_eq": {"in": 5}}), "text_eq"),
        case("where range on a bool", lambda: repo.find_many(where={"bool_eq": {"gt": True}}), "bool_eq"),
        case("where contains on an int", lambda: repo.find_many(where={"int_range": {"contains": "1"}}),
             "int_range"),
        case("count unknown field", lambda: repo.count(where={"nope": 1}), "nope"),
        case("order_by unknown field", lambda: repo.find_many(order_by={"nope": "asc"}), "nope"),
        case("order_by bad direction", lambda: repo.find_many(order_by={"text_eq": "up" * 100}), "text_eq"),
        case("order_by a JSON field", lambda: repo.find_many(order_by={"json_dict": "asc"}), "json_dict"),
        case("order_by not a mapping", lambda: repo.find_many(order_by=5)),
        case("take negative", lambda: repo.find_many(take=-1), "take"),
        case("take huge", lambda: repo.find_many(take=10**400), "take"),
        case("take a str", lambda: repo.find_many(take="x"), "take"),
        case("skip a bool", lambda: repo.find_many(skip=True), "skip"),
        case("cursor an object", lambda: repo.find_many(cursor=object()), "cursor"),
        case("cursor with a surrogate", lambda: repo.find_many(cursor="a\udc80"), "cursor"),
        case("select unknown field", lambda: repo.find_many(select={"nope": True}), "nope"),
        case("include unknown relation", lambda: repo.find_many(include={"nope": True}), "nope"),
        case("find_unique on a non-unique field",
             lambda: repo.find_unique(where={"int_range": 1}), "int_range"),
        case("find_unique with an empty where", lambda: repo.find_unique(where={})),
        case("find_unique with an operator", lambda: repo.find_unique(where={"text_unique": {"in": ["a"]}}),
             "text_unique"),
        case("delete unknown field", lambda: repo.delete(where={"nope": 1}), "nope"),
        case("delete_many unknown operator",
             lambda: repo.delete_many(where={"int_range": {"near": 1}}), "near"),
        case("touch without a ttl on a model without one", lambda: repo.touch(where=where)),
    ]  # fmt: skip


async def test_unknown_fields_operators_and_wrong_shapes(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str
) -> None:
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await matrix.seed()
    for label, call, names in shape_cases(matrix.repo, matrix.seeds[0].id):
        await matrix.refused(label, call, None, names)
    matrix.report()


async def test_storable_number_operations_are_exact(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str
) -> None:
    """Operations whose result the field can store: ints past 64 bits, infinities in a range index."""
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await matrix.seed()
    cases: list[tuple[str, Any, Any, Any]] = [
        ("int_range", 1, {"increment": 10**400}, 1 + 10**400),
        ("int_plain", -(10**400), {"decrement": 10**400}, -2 * 10**400),
        ("int_range", 2**63 - 1, {"increment": 1}, 2**63),
        ("float_range", 1.5, {"multiply": math.inf}, math.inf),
        ("dec_range", Decimal("1.5"), {"increment": Decimal(10**400)}, Decimal("1.5") + Decimal(10**400)),
    ]
    for field, start, change, result in cases:
        label = f"update {field}={describe(start)} {describe(change)}"
        created: list[str] = []

        async def call(
            field: str = field, start: Any = start, change: Any = change, created: Any = created
        ) -> Any:
            record = await matrix.repo.create(data={field: start})
            created.append(record.id)
            return await matrix.repo.update(where={"id": record.id}, data={field: change})

        await matrix.stored(label, call, field, result, created)
    audit = await matrix.orm.audit(Kinds)
    if not audit.ok:
        matrix.fail("number operations", f"audit: {audit}")
    matrix.report()


ID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "surrogate": CLASSES["surrogate"],
    "long-surrogate": CLASSES["long-surrogate"],
    "empty": st.just(""),
    "too-long": st.integers(1025, 5000).map(lambda n: "i" * n),
    "megabyte": CLASSES["megabyte"],
    "wrong-type": st.sampled_from([5, 1.5, None, b"id", object()]),
}
INT_ID_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "huge-int": CLASSES["huge-int"],
    "past-2**53": st.integers(2**53 + 1, 2**64).map(lambda n: -n if n % 2 else n),
    "too-many-digits": CLASSES["too-many-digits"],
    "digit-string": CLASSES["digit-string"],
    "not-a-number": st.sampled_from(["seven", "1.5", "", "\udc80"]),
    "wrong-type": st.sampled_from([1.5, None, object(), [1], {"x": 1}]),
}


def id_calls(repo: Any, bad: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    return {
        "create": lambda: repo.create(data={"id": bad}),
        "create_many": lambda: repo.create_many([{"id": bad}]),
        "find_unique": lambda: repo.find_unique(where={"id": bad}),
        "update": lambda: repo.update(where={"id": bad}, data={"tag": "x"}),
        "upsert": lambda: repo.upsert(where={"id": bad}, create={}, update={}),
        "delete": lambda: repo.delete(where={"id": bad}),
        "find_many eq": lambda: repo.find_many(where={"id": bad}),
        "find_many cursor": lambda: repo.find_many(cursor=bad),
        "delete_many in": lambda: repo.delete_many(where={"id": {"in": [bad]}}),
    }


@NO_SHRINK
@given(data=st.data())
async def test_bad_ids_in_every_method(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str, data: st.DataObject
) -> None:
    """Manual string and int ids: refused when they cannot be ids, wherever they are given; a
    range bound past where any int id can be is valid and clamped."""
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    await raw.flushdb()
    await matrix.seed()
    for model, strategies in ((Keyed, ID_VALUES), (Numbered, INT_ID_VALUES)):
        repo = matrix.orm.repo(model)
        for kind, strategy in strategies.items():
            bad = data.draw(strategy)
            calls = id_calls(repo, bad)
            for method, call in calls.items():
                await matrix.refused(f"{model.__name__} {method} id={describe(bad)} ({kind})", call, bad)
    numbered = matrix.orm.repo(Numbered)
    for op, bound, wanted in [("gt", 10**400, []), ("lt", -(10**400), []), ("gte", -(10**400), [1]),
                              ("lte", 10**400, [1]), ("gt", 2**60, [])]:  # fmt: skip

        async def ranged(op: str = op, bound: int = bound) -> Any:
            return [record.id for record in await numbered.find_many(where={"id": {op: bound}})]

        await matrix.answered(f"Numbered find_many id {op} {describe(bound)}", ranged, wanted)
    matrix.report()


async def test_aliases_work_end_to_end_and_alias_keys_name_the_attribute(
    make_orm: MakeOrm, raw: aioredis.Redis, backend_name: str
) -> None:
    """Stored and read by attribute name; created by alias as the model validates; an alias used
    where the attribute is expected names the attribute."""
    matrix = Matrix(make_orm(SCHEMA), raw, backend_name)
    repo = matrix.orm.repo(Aliased)
    created = await repo.create(data={"userName": "ann", "lvl": 3})
    assert (created.user_name, created.level) == ("ann", 3)
    stored = await raw.hgetall(f"{{aliased}}:r:{created.id}")
    assert stored == {"id": created.id, "user_name": "ann", "level": "3"}
    assert await repo.find_unique(where={"id": created.id}) == created
    assert await repo.find_many(where={"user_name": "ann"}, order_by={"level": "desc"}) == [created]
    partial = await repo.find_many(where={"id": created.id}, select={"user_name": True})
    assert [record.user_name for record in partial] == ["ann"]
    matrix.baseline = await keyspace(raw)

    updates = [
        ("update of an aliased model", {"level": 4, "user_name": "bo"}, ("bo", 4)),
        ("update of an aliased model read first (multiply)", {"level": {"multiply": 2}}, ("bo", 8)),
    ]
    for label, data, wanted in updates:

        async def update(data: dict[str, Any] = data) -> Any:
            return await repo.update(where={"id": created.id}, data=data)

        matrix.cases += 1
        updated, error, _ = await matrix.attempt(update)
        if error is not None:
            matrix.fail(label, f"{type(error).__name__}: {str(error)[:120]!r}")
            await restore(raw, matrix.baseline)
            continue
        assert (updated.user_name, updated.level) == wanted
        assert await repo.find_unique(where={"id": created.id}) == updated
        assert await repo.count(where={"user_name": "bo"}) == 1
        matrix.baseline = await keyspace(raw)
    alias_keys = [
        ("where by alias", lambda: repo.find_many(where={"userName": "bo"}), "'user_name'"),
        ("order_by alias", lambda: repo.find_many(order_by={"lvl": "asc"}), "'level'"),
        ("update data by alias", lambda: repo.update(where={"id": created.id}, data={"lvl": 5}), "'level'"),
        ("find_unique by alias", lambda: repo.find_unique(where={"userName": "bo"}), "'user_name'"),
        ("delete_many by alias", lambda: repo.delete_many(where={"lvl": 3}), "'level'"),
        ("create by attribute name", lambda: repo.create(data={"user_name": "x"}), "userName"),
    ]
    for label, call, name in alias_keys:
        await matrix.refused(label, call, None, ("Aliased", name))
    docs = matrix.orm.repo(AliasedId)
    for key in ("id", "_id"):
        await matrix.refused(
            f"supplied id under {key!r} on a generated-id model",
            lambda key=key: docs.create(data={key: "chosen"}),  # type: ignore[misc]
            None,
            ("AliasedId", "id"),
        )
    assert (await matrix.orm.audit(Aliased)).ok
    matrix.report()
