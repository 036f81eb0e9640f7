"""The write script's shared Lua, run directly on a real server against its Python twin.

``_scripts/state.lua`` and ``_model/state.py``/``_model/keys.py`` must agree on every input:
the write script computes keys and facts on the server (a counter's new value, a claim holder's
record key) that Python computes on the client.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from redis_orm_async import Field, Model, Schema
from redis_orm_async._model.keys import escape, value_token
from redis_orm_async._model.state import (
    entries,
    layout,
    parse_state_line,
    record_facts,
    score_text,
    state_line,
)
from redis_orm_async._scripts import load

from .strategies import ODD_TEXT

STATE_LUA = load("state").source
INTS = (
    st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.sampled_from([0, -1, 2**63, -(2**63)])
)


async def lua(raw: aioredis.Redis, body: str, *args: Any) -> Any:
    """Run ``body`` after the state library, with ``args`` as ARGV."""
    return await raw.eval(STATE_LUA + "\n" + body, 0, *args)


@given(text=ODD_TEXT | st.text(min_size=200, max_size=400))
async def test_escape_and_value_token_agree(raw: aioredis.Redis, text: str) -> None:
    escaped, token = await lua(raw, "return {escape(ARGV[1]), value_token(ARGV[1])}", text)
    assert escaped == escape(text)
    assert token == value_token(text)


@given(x=INTS, y=INTS)
async def test_integer_addition_is_exact_at_any_size(raw: aioredis.Redis, x: int, y: int) -> None:
    total, valid = await lua(
        raw, "return {add_int(ARGV[1], ARGV[2]), tostring(is_int_text(ARGV[1]))}", str(x), str(y)
    )
    assert total == str(x + y)
    assert valid == "true"


@given(text=st.sampled_from(["", "-", "-0", "01", "1.0", "1e3", " 1", "+1", "\u0661", "--1", "0x1"]))
async def test_only_canonical_integers_are_counted(raw: aioredis.Redis, text: str) -> None:
    assert await lua(raw, "return tostring(is_int_text(ARGV[1]))", text) == "false"


@given(x=INTS | st.integers(min_value=10**300, max_value=10**400))
async def test_an_integer_scores_as_python_scores_it(raw: aioredis.Redis, x: int) -> None:
    score = await lua(raw, "return score_text(ARGV[1])", str(x))
    assert score == score_text(float(str(x)))


class Item(Model, key_prefix="it", unique_together=[("kind", "n"), ("kind", "id")]):
    id: str
    kind: str = Field(index=True)
    n: int = Field(0, index=True)
    name: str | None = Field(None, lex=True, unique=True)


META = Schema([Item]).meta(Item)


@given(
    id_text=ODD_TEXT.filter(bool),
    kind=ODD_TEXT,
    n=INTS,
    name=st.none() | ODD_TEXT | st.text(min_size=260, max_size=300),
)
async def test_entries_from_a_state_line_agree(
    raw: aioredis.Redis, id_text: str, kind: str, n: int, name: str | None
) -> None:
    stored = {"kind": kind, "n": str(n), **({} if name is None else {"name": name})}
    facts = record_facts(META, stored)
    line = state_line(META, facts)
    assert parse_state_line(line) == facts
    shape = layout(META)
    zsets, claims, formatted = await lua(
        raw,
        """
        local model, at = read_model(3)
        local facts = parse_facts(ARGV[2])
        local zsets, claims = entries(model, ARGV[1], facts)
        local z, c = {}, {}
        for key, entry in pairs(zsets) do z[#z + 1] = key .. '|' .. entry[1] .. '|' .. entry[2] end
        for key, name in pairs(claims) do c[#c + 1] = key .. '|' .. name end
        return {z, c, format_facts(model, facts)}
        """,
        id_text,
        line,
        *shape.words,
    )
    expected = entries(META, id_text, facts)
    assert sorted(zsets) == sorted(f"{k}|{m}|{s}" for k, (m, s) in expected.zsets.items())
    assert sorted(claims) == sorted(f"{k}|{c}" for k, c in expected.claims.items())
    assert formatted == line
