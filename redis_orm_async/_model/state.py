"""A record's state as the index sees it: its *facts*, and the entries those facts imply.

A fact is what the index keeps of one field's value: its value token (for an equality index or a
unique claim), its score (for a range index) and its escaped text (for a lex index). Every write
stores the record's facts as one *state line* in the model's ``st`` HASH, next to the record, and
the next write diffs the entries of the old facts against the entries of the new ones. So a write
needs no codec on the server, an expired record's line tells the sweep which entries to remove,
and a record edited by another tool still has its index entries removed exactly.

Everything here mirrors ``_scripts/state.lua`` and is tested against it on the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from .codec import FieldCodec
from .ids import ulid_time_ms
from .keys import escape, value_token
from .schema import ModelMeta

LEX_SEPARATOR = "\x00"
"""Separates the escaped text from the id in a lex ZSET member; escaped text holds no NUL."""


class Fact(NamedTuple):
    """One field's part of the index; an empty string is a part the field does not need (a
    tuple: every create builds one per indexed field, and a tuple is the cheapest to build)."""

    token: str = ""
    score: str = ""
    lex: str = ""


Facts = dict[str, Fact]


@dataclass(frozen=True)
class Layout:
    """Which fields have facts and what the index derives from them; ``words`` says the same to
    the write script (its ``read_model``), which reads them without parsing any text."""

    base: str
    order: tuple[str, ...]
    needs: Mapping[str, str]
    equality: tuple[str, ...]
    ranges: tuple[str, ...]
    lex: tuple[str, ...]
    uniques: tuple[tuple[str, tuple[str, ...]], ...]
    int_ids: bool
    max_life_ms: int | None = None
    words: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        max_life = "" if self.max_life_ms is None else str(self.max_life_ms)
        words = [self.base, "i" if self.int_ids else "-", max_life, str(len(self.order))]
        for name in self.order:
            words.extend((name, self.needs[name]))
        for names in (self.equality, self.ranges, self.lex):
            words.extend((str(len(names)), *names))
        words.append(str(len(self.uniques)))
        for name, fields in self.uniques:
            words.extend((name, str(len(fields)), *fields))
        object.__setattr__(self, "words", tuple(words))


_CACHE = "_state_layout"


def layout(meta: ModelMeta) -> Layout:
    """The model's index layout, built once per model meta and kept on it (every write asks for
    it several times per record, and a dict lookup is what that can afford)."""
    found: Layout | None = meta.__dict__.get(_CACHE)
    if found is None:
        found = _build_layout(meta)
        object.__setattr__(meta, _CACHE, found)
    return found


def _build_layout(meta: ModelMeta) -> Layout:
    needs: dict[str, str] = {}

    def need(name: str, part: str) -> None:
        if part not in needs.get(name, ""):
            needs[name] = needs.get(name, "") + part

    for name, field_meta in meta.fields.items():
        if field_meta.index == "equality":
            need(name, "t")
        elif field_meta.index == "range":
            need(name, "s")
        if field_meta.lex:
            need(name, "x")
    for constraint in meta.uniques:
        for name in constraint.fields:
            if name != "id":
                need(name, "t")
    fields = meta.fields
    return Layout(
        base=meta.keys.base,
        order=tuple(name for name in fields if name in needs),
        needs=needs,
        equality=tuple(name for name, f in fields.items() if f.index == "equality"),
        ranges=tuple(name for name, f in fields.items() if f.index == "range"),
        lex=tuple(name for name, f in fields.items() if f.lex),
        uniques=tuple((c.name, c.fields) for c in meta.uniques),
        int_ids=meta.id_kind == "manual_int",
        max_life_ms=None if meta.max_life is None else max(1, meta.max_life // timedelta(milliseconds=1)),
    )


def score_text(score: float) -> str:
    """A ZSET score as the write script writes it (C's ``%.17g``: exact, and ``inf`` past the
    double range)."""
    return format(score, ".17g")


def field_fact(meta: ModelMeta, name: str, text: str | None) -> Fact:
    """The fact of one field's stored text (None: null)."""
    needs = layout(meta).needs.get(name, "")
    if not needs:
        return Fact()  # no index part: a field with no index role, or the record's NULLS list
    codec = meta.fields[name].codec
    token = score = lex = ""
    if "t" in needs:
        token = value_token(None if text is None else codec.token(text))
    if text is not None:
        if "s" in needs and codec.score is not None:
            score = score_text(codec.score(text))
        if "x" in needs:
            lex = "=" + escape(text)  # "=" marks a value, so that an empty text still has its entry
    return Fact(token, score, lex)


def record_facts(meta: ModelMeta, encoded: Mapping[str, str | None]) -> Facts:
    """The facts of a record from its stored texts (a missing field is null)."""
    facts: Facts = {}
    for name, needs, token_of, score_of in fact_plan(meta):
        text = encoded.get(name)
        token = score = lex = ""
        if needs[0]:
            token = value_token(None if text is None else token_of(text))
        if text is not None:
            if score_of is not None:
                score = score_of(text)
            if needs[2]:
                lex = "=" + escape(text)
        facts[name] = Fact(token, score, lex)
    return facts


_PLAN = "_state_fact_plan"
FieldPlan = tuple[str, tuple[bool, bool, bool], Callable[[str], str], Callable[[str], str] | None]
FactPlan = tuple[FieldPlan, ...]


def fact_plan(meta: ModelMeta) -> FactPlan:
    """Per field with facts: its name, which parts it needs, its token and its score text
    functions (looked up once: every create derives the facts of every indexed field)."""
    found: FactPlan | None = meta.__dict__.get(_PLAN)
    if found is None:
        plan = []
        for name in layout(meta).order:
            needs = layout(meta).needs[name]
            codec = meta.fields[name].codec
            score = _score_text_of(codec) if "s" in needs else None
            plan.append((name, ("t" in needs, "s" in needs, "x" in needs), codec.token, score))
        found = tuple(plan)
        object.__setattr__(meta, _PLAN, found)
    return found


def _int_score_text(text: str) -> str:
    # a plain int of up to 15 digits is a double exactly, and %.17g writes it back digit for digit
    if 0 < len(text) <= 15 and text.isascii() and text.isdecimal() and (text[0] != "0" or text == "0"):
        return text
    return score_text(float(text))


def _score_text_of(codec: FieldCodec) -> Callable[[str], str] | None:
    score = codec.score
    if score is None:
        return None
    if codec.kind == "int":
        return _int_score_text
    return lambda text: score_text(score(text))


def state_line(meta: ModelMeta, facts: Mapping[str, Fact]) -> str:
    """One row per field with a fact, ``name\\ttoken\\tscore\\tlex``, in the layout's order; no
    part can hold a tab or a newline (tokens and lex text are escaped, scores are numbers)."""
    rows = []
    for name in layout(meta).order:
        fact = facts.get(name)
        if fact is not None:
            rows.append(f"{name}\t{fact.token}\t{fact.score}\t{fact.lex}")
    return "\n".join(rows)


def parse_state_line(line: str | None) -> Facts:
    facts: Facts = {}
    if not line:
        return facts
    for row in line.split("\n"):
        parts = row.split("\t")
        if len(parts) == 4:
            facts[parts[0]] = Fact(parts[1], parts[2], parts[3])
    return facts


def id_score(meta: ModelMeta, id_text: str) -> str:
    """Int ids sort numerically in the id ZSET; string ids share score 0 and sort by text."""
    return id_text if meta.id_kind == "manual_int" else "0"


def lex_member(escaped_text: str, id_text: str) -> str:
    return escaped_text + LEX_SEPARATOR + id_text


@dataclass
class Entries:
    """``zsets``: ZSET key to (member, score text); ``claims``: claim key to constraint name."""

    zsets: dict[str, tuple[str, str]] = field(default_factory=dict)
    claims: dict[str, str] = field(default_factory=dict)


def claim_keys(meta: ModelMeta, id_text: str, facts: Mapping[str, Fact]) -> dict[str, str]:
    """The unique claims a record with these facts holds: claim key to constraint name."""
    base = meta.keys.base
    claims: dict[str, str] = {}
    for constraint, names in layout(meta).uniques:
        parts = []
        for name in names:
            if name == "id":
                token = value_token(id_text)
            else:
                fact = facts.get(name)
                token = "" if fact is None else fact.token
            if token in ("", "-"):
                break
            parts.append(token)
        else:
            claims[f"{base}:u:{constraint}:{':'.join(parts)}"] = constraint
    return claims


def index_entries(meta: ModelMeta, id_text: str, facts: Mapping[str, Fact]) -> dict[str, tuple[str, str]]:
    """Every index entry a record with these facts has: ZSET key to (member, score text); a field
    without a fact (an index added after the record was written) has none until ``repair``."""
    shape = layout(meta)
    base = shape.base
    score = id_score(meta, id_text)
    zsets = {base + ":ids": (id_text, score)}
    for name in shape.equality:
        fact = facts.get(name)
        if fact is not None and fact.token:
            zsets[f"{base}:i:{name}:{fact.token}"] = (id_text, score)
    for name in shape.ranges:
        fact = facts.get(name)
        if fact is not None and fact.score:
            zsets[f"{base}:z:{name}"] = (id_text, fact.score)
    for name in shape.lex:
        fact = facts.get(name)
        if fact is not None and fact.lex:
            zsets[f"{base}:l:{name}"] = (lex_member(fact.lex[1:], id_text), "0")
    return zsets


def entries(meta: ModelMeta, id_text: str, facts: Mapping[str, Fact]) -> Entries:
    """Every index entry and claim a record with these facts has."""
    return Entries(index_entries(meta, id_text, facts), claim_keys(meta, id_text, facts))


def capped(meta: ModelMeta, id_text: str, expiry: int | None) -> int | None:
    """An expiry (ms) no later than the record's ``max_life`` allows, counted from the creation
    time its ULID carries; a model without ``max_life`` keeps ``expiry`` as it is."""
    cap_ms = layout(meta).max_life_ms
    born = None if cap_ms is None else ulid_time_ms(id_text)
    if cap_ms is None or born is None:
        return expiry
    deadline = born + cap_ms
    return deadline if expiry is None or expiry > deadline else expiry
