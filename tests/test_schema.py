"""Schema checks: refused declarations name the model and the field."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict
from pydantic import Field as PydanticField
from pydantic.alias_generators import to_camel

from redis_orm_async import Field, Model, Schema, SchemaError, ValidationError
from redis_orm_async._model.codec import has_surrogate
from redis_orm_async._model.ids import new_ulid
from redis_orm_async._model.schema import MAX_LEX_LENGTH

from .models import Account, Everything, Ticket, User


def test_a_valid_schema_gathers_metadata() -> None:
    schema = Schema([User, Everything, Account, Ticket])
    user = schema.meta(User)
    assert user.id_kind == "generated"
    assert user.fields["email"].unique and user.fields["age"].index == "range"
    assert user.fields["status"].index == "equality"
    assert [c.fields for c in schema.meta(Ticket).uniques] == [("org", "number")]
    assert schema.meta(Account).id_kind == "manual_str"
    assert schema.meta(Ticket).id_kind == "manual_int"
    assert schema.meta(Everything).keys.prefix == "every"
    assert user.keys.prefix == "user"


def test_generated_integer_ids_are_refused() -> None:
    class Counter(Model):
        id: int = PydanticField(default_factory=lambda: 1)

    with pytest.raises(SchemaError, match=r"Counter\.id.*generated integer ids"):
        Schema([Counter])


def test_schema_qualified_names_are_refused() -> None:
    class Users(Model, key_prefix="auth.users"):
        name: str

    with pytest.raises(SchemaError, match=r"Users.*schema-qualified"):
        Schema([Users])


@pytest.mark.parametrize("option", [{"index": True}, {"unique": True}])
def test_json_fields_cannot_be_indexed_or_unique(option: dict[str, Any]) -> None:
    class Doc(Model):
        body: dict[str, Any] = Field(default_factory=dict, **option)

    with pytest.raises(SchemaError, match=r"Doc\.body"):
        Schema([Doc])


def test_lex_needs_a_text_field() -> None:
    class Bad(Model):
        n: int = Field(0, lex=True)

    with pytest.raises(SchemaError, match=r"Bad\.n.*lex"):
        Schema([Bad])


def test_duplicate_key_prefixes_are_refused() -> None:
    class A(Model, key_prefix="same"):
        x: int = 0

    class B(Model, key_prefix="same"):
        y: int = 0

    with pytest.raises(SchemaError, match=r"B.*'same'.*A"):
        Schema([A, B])


def test_unknown_unique_together_field_is_refused() -> None:
    class C(Model, unique_together=[("a", "missing")]):
        a: str

    with pytest.raises(SchemaError, match=r"C.*missing"):
        Schema([C])


@pytest.mark.parametrize("prefix", ["has space", "a:b", "{tag}", "star*"])
def test_unsafe_key_prefixes_are_refused(prefix: str) -> None:
    class P(Model, key_prefix=prefix):
        a: str = ""

    with pytest.raises(SchemaError, match="P"):
        Schema([P])


def test_non_models_and_duplicates_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"not a redis_orm_async\.Model"):
        Schema([dict])  # type: ignore[list-item]
    with pytest.raises(SchemaError, match="twice"):
        Schema([User, User])
    with pytest.raises(SchemaError, match="not in this schema"):
        Schema([User]).meta(Account)


def test_ids_must_be_str_or_int() -> None:
    class F(Model):
        id: float

    with pytest.raises(SchemaError, match=r"F\.id"):
        Schema([F])


class Guarded(Model, key_prefix="guarded", unique_together=[("pair", "tag")]):
    text: str | None = None
    lexed: str | None = Field(None, lex=True)
    ratio: float | None = Field(None, index=True)
    loose: float | None = None
    pair: float | None = None
    tag: str | None = None
    price: Decimal | None = Field(None, unique=True, allow_inf_nan=True)
    number: int | None = Field(None, index=True)
    blob: bytes | None = None
    data: dict[str, Any] | None = None


GUARDED = Schema([Guarded]).meta(Guarded)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("text", "a\udc80b", "surrogate"),
        ("text", "x" * 1000 + "\ud800", "surrogate"),
        ("lexed", "y" * (MAX_LEX_LENGTH + 1), "at most 1024"),
        ("ratio", float("nan"), "NaN"),
        ("pair", float("nan"), "NaN"),
        ("price", Decimal("NaN"), "NaN"),
        ("price", Decimal("sNaN"), "NaN"),
        ("number", 10**4400, "digits"),
        ("blob", b"\xff\xfe", "UTF-8"),
        ("data", {"k": float("inf")}, "Infinity"),
        ("data", {"k": "\udc80"}, "JSON"),
        ("data", {"\udc80": 1}, "surrogate"),
    ],
    ids=lambda item: item if isinstance(item, str) and len(item) < 20 and item.isascii() else "",
)
def test_unstorable_values_are_refused_naming_the_model_and_field(
    field: str, value: Any, reason: str
) -> None:
    instance = Guarded.model_construct(**{field: value})
    with pytest.raises(ValidationError, match=reason) as caught:
        GUARDED.encode(instance)
    assert caught.value.message.startswith(f"Guarded.{field}: ")
    assert caught.value.meta == {"model": "Guarded", "field": field}
    if isinstance(value, str) and len(value) > 40:
        assert value not in caught.value.message and value[:100] not in caught.value.message
    with pytest.raises(ValidationError, match=reason):
        GUARDED.fields[field].parse(value)


@given(st.text(max_size=50), st.integers(0, 50), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
def test_a_surrogate_anywhere_in_text_is_refused(text: str, position: int, surrogate: str) -> None:
    bad = text[:position] + surrogate + text[position:]
    with pytest.raises(ValidationError, match=r"Guarded\.text"):
        GUARDED.encode(Guarded.model_construct(text=bad))
    with pytest.raises(ValidationError, match="surrogate"):
        GUARDED.id_text(bad)


def test_storable_edge_values_are_kept() -> None:
    values: dict[str, Any] = {
        "loose": float("nan"),
        "ratio": float("-inf"),
        "number": -(10**400),
        "lexed": "z" * MAX_LEX_LENGTH,
        "text": "é" * 100_000,
        "price": Decimal("Infinity"),
        "blob": "ü".encode(),
        "data": {"big": 10**400},
    }
    record = Guarded(**values)
    encoded = GUARDED.encode(record)
    assert encoded["number"] == str(-(10**400)) and encoded["ratio"] == "-inf"
    decoded = GUARDED.decode(record.id, {k: v for k, v in encoded.items() if v is not None})
    assert decoded.loose is not None and math.isnan(decoded.loose)
    assert decoded.model_dump(exclude={"loose"}) == record.model_dump(exclude={"loose"})


class Point(BaseModel):
    model_config = ConfigDict(validate_by_name=False)
    zip_code: str = PydanticField(alias="zipCode")


class Aliased(Model, key_prefix="aliased"):
    user_name: str = Field(alias="userName", index=True)
    choice: int = Field(0, validation_alias=AliasChoices("pick", "chosen"))
    path: int = Field(0, validation_alias=AliasPath("deep", 0))
    shown: str = Field("", serialization_alias="Shown")
    point: Point | None = None


class Generated(Model, key_prefix="camel"):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True)
    first_name: str = ""


def test_aliases_are_stored_and_read_by_attribute_name() -> None:
    meta = Schema([Aliased]).meta(Aliased)
    record = Aliased.model_validate(
        {"userName": "ann", "chosen": 2, "deep": [3], "shown": "s", "point": {"zipCode": "z"}}
    )
    encoded = meta.encode(record)
    assert set(encoded) == {"user_name", "choice", "path", "shown", "point"}
    assert encoded["point"] == '{"zip_code":"z"}'
    stored = {"id": record.id, **{k: v for k, v in encoded.items() if v is not None}}
    assert meta.decode(record.id, stored) == record
    assert meta.validate_names({"id": record.id, **record.__dict__}) == record
    assert "use" not in meta.field_hint("user_name")
    assert "'user_name'" in meta.field_hint("userName")
    assert "'choice'" in meta.field_hint("pick") and "'path'" in meta.field_hint("deep")
    generated = Schema([Generated]).meta(Generated)
    person = Generated.model_validate({"firstName": "Bo"})
    assert generated.encode(person) == {"first_name": "Bo"}
    assert generated.decode(person.id, {"first_name": "Bo"}) == person
    assert "'first_name'" in generated.field_hint("firstName")


@given(st.text(max_size=20).filter(lambda t: not has_surrogate(t)), st.integers(), st.integers())
def test_aliased_records_round_trip(name: str, choice: int, path: int) -> None:
    meta = Schema([Aliased]).meta(Aliased)
    record = Aliased.model_validate({"userName": name, "pick": choice, "deep": [path]})
    encoded = meta.encode(record)
    assert meta.decode(record.id, {k: v for k, v in encoded.items() if v is not None}) == record


def test_supplied_ids_is_declared_per_model() -> None:
    class Open(Model, supplied_ids=True):
        name: str = ""

    class Closed(Model):
        name: str = ""

    schema = Schema([Open, Closed])
    assert schema.meta(Open).supplied_ids and not schema.meta(Closed).supplied_ids
    meta = schema.meta(Closed)
    assert meta.id_supplied(Closed(id="mine")) and not meta.id_supplied(Closed())
    assert meta.id_supplied({"id": "x"}) and not meta.id_supplied({"name": "x"})
    assert not meta.id_supplied(Closed.model_validate({"name": "n"}))

    class Manual(Model, supplied_ids=True):
        id: str

    with pytest.raises(SchemaError, match=r"Manual.*supplied_ids applies to generated ids"):
        Schema([Manual])

    class Weird(Model, supplied_ids="yes"):  # type: ignore[arg-type]
        name: str = ""

    with pytest.raises(SchemaError, match="supplied_ids must be True or False"):
        Schema([Weird])


def test_an_aliased_id_counts_as_supplied_under_its_alias() -> None:
    class Doc(Model):
        id: str = PydanticField(default_factory=new_ulid, alias="_id")

    meta = Schema([Doc]).meta(Doc)
    assert meta.id_supplied({"_id": "x"}) and meta.id_supplied(Doc.model_validate({"_id": "x"}))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"ttl": 5}, "ttl must be a timedelta"), ({"ttl": timedelta(0)}, "ttl must be positive")],
)
def test_model_options_of_the_wrong_type_are_refused(options: dict[str, Any], message: str) -> None:
    class Opt(Model, **options):
        a: str = ""

    with pytest.raises(SchemaError, match=rf"Opt: {message}"):
        Schema([Opt])


def test_a_bare_string_unique_together_group_is_refused() -> None:
    with pytest.raises(SchemaError, match="groups of field names"):

        class Str(Model, unique_together=["email"]):
            email: str = ""


def test_extra_allow_is_refused_since_extras_would_be_lost() -> None:
    class Loose(Model):
        model_config = ConfigDict(extra="allow")
        a: str = ""

    with pytest.raises(SchemaError, match="Loose: extra='allow'"):
        Schema([Loose])
