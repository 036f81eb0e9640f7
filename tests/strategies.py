"""Hypothesis strategies for field values, including the odd ones."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

from hypothesis import strategies as st

from .models import Address, Level, Status

ODD_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list(":{}*?[]\\\n\x00 é😀%")), min_size=1, max_size=30),
    st.sampled_from(["", ":", "{", "}", "*", "?", "[", "\n", "\x00", "😀", "a:b{c}*?[d]"]),
)
TIMEZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
DATETIMES = st.datetimes() | st.datetimes(timezones=TIMEZONES)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)

EVERYTHING = st.fixed_dictionaries(
    {},
    optional={
        "text": st.none() | ODD_TEXT,
        "number": st.none() | st.integers(min_value=-(2**63), max_value=2**63),
        "ratio": st.none() | st.floats(allow_nan=False),
        "flag": st.none() | st.booleans(),
        "price": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=4),
        "at": st.none() | DATETIMES,
        "day": st.none() | st.dates(),
        "status": st.none() | st.sampled_from(Status),
        "level": st.none() | st.sampled_from(Level),
        "data": st.none() | st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
        "items": st.none() | st.lists(st.integers(), max_size=5),
        "address": st.none() | st.builds(Address, city=ODD_TEXT, zip=st.none() | st.text(max_size=5)),
        "email": st.none() | st.sampled_from(["a@example.com", "x.y+z@example.org"]),
    },
)
