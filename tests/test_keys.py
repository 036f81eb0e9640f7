"""Key layout and escaping are pure: tested without a server."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from redis_orm_async import Field, Model, OrmError, Schema
from redis_orm_async._model.keys import MAX_INLINE_VALUE, KeySpace, escape, unescape, value_token
from redis_orm_async._query.locate import unique_locator

ODD = st.text(alphabet=st.sampled_from(list(":{}*?[]\\%~=#-\n\x00 aZ9é😀")), max_size=20) | st.text()


@given(ODD)
def test_escape_round_trips(text: str) -> None:
    assert unescape(escape(text)) == text


@given(ODD, ODD)
def test_escape_is_injective(a: str, b: str) -> None:
    assert (escape(a) == escape(b)) == (a == b)


@given(ODD)
def test_escaped_text_holds_no_separator_or_glob_or_brace(text: str) -> None:
    escaped = escape(text)
    assert not set(escaped) & set(":{}*?[]\\\n\x00")


@given(ODD, ODD)
def test_value_tokens_never_collide(a: str, b: str) -> None:
    assert (value_token(a) == value_token(b)) == (a == b)
    assert value_token(None) not in {value_token(a), value_token(b)}


def test_long_values_become_a_fixed_size_digest() -> None:
    huge = "x" * 1_000_000
    token = value_token(huge)
    assert token.startswith("#") and len(token) == 41  # SHA1, which the write script computes too
    assert value_token("x" * MAX_INLINE_VALUE).startswith("=")
    assert value_token(huge) != value_token(huge + "y")


@given(st.text(alphabet="aé😀", min_size=60, max_size=300))
def test_the_digest_threshold_counts_utf8_bytes_as_lua_does(text: str) -> None:
    digested = value_token(text).startswith("#")
    assert digested == (len(text.encode()) > MAX_INLINE_VALUE)


def test_every_key_of_a_model_shares_one_hash_tag() -> None:
    keys = KeySpace("user", namespace="app")
    produced = [
        keys.record("a:b"),
        keys.ids(),
        keys.equality("status", "x"),
        keys.equality("status", None),
        keys.range("age"),
        keys.lex("name"),
        keys.unique("email", ["a@x.io"]),
        keys.expiry(),
        keys.states(),
    ]
    for key in produced:
        assert key.startswith("app:{user}:")
        assert key.index("{") == key.index("{user}")


def test_record_key_layout_and_id_recovery() -> None:
    keys = KeySpace("user")
    assert keys.record("42") == "{user}:r:42"
    assert keys.record("a:b*") == "{user}:r:a%3Ab%2A"
    assert keys.id_from_record_key(keys.record("a:b*{x}")) == "a:b*{x}"
    assert keys.equality("status", "active") == "{user}:i:status:=active"
    assert keys.equality("status", None) == "{user}:i:status:-"
    assert keys.unique("org+slug", ["a", "b:c"]) == "{user}:u:org+slug:=a:=b%3Ac"


@given(ODD, ODD, ODD, ODD)
def test_a_value_cannot_forge_another_fields_or_constraints_key(a: str, b: str, c: str, d: str) -> None:
    keys = KeySpace("user")
    if (a, b) != (c, d):
        assert keys.unique("x+y", [a, b]) != keys.unique("x+y", [c, d])
    assert keys.equality("f", a) != keys.equality("g", a)
    assert keys.record(a) != keys.ids()


class Claimed(Model, key_prefix="claimed"):
    email: str = Field(unique=True)
    number: int | None = Field(None, unique=True)
    stamp: datetime | None = Field(None, unique=True)
    code: str = Field("", unique=True)
    renamed: str | None = Field(None, unique=True, stored_as="rn")


ANY_VALUE = st.one_of(
    st.none(), st.text(max_size=80), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.datetimes(), st.booleans(), st.binary(max_size=8), st.lists(st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=300)
@given(
    name=st.sampled_from(["email", "number", "stamp", "code", "renamed", "rn", "nope", "id"]), value=ANY_VALUE
)
def test_a_one_field_unique_lookup_finds_what_the_general_lookup_finds(name: str, value: object) -> None:
    """``{name: v}`` takes a short path; ``{name: {"eq": v}}`` the general one: the same claim
    key, or the same kind of error, for any value of any field."""
    meta = Schema([Claimed]).meta(Claimed)

    def outcome(where: dict[str, object]) -> object:
        try:
            return unique_locator(meta, where)
        except OrmError as exc:
            return type(exc)

    assert outcome({name: value}) == outcome({name: {"eq": value}})
