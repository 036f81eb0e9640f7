"""Schema checks: refused declarations name the model and the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field as PydanticField

from redis_orm_async import Field, Model, Schema, SchemaError

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
