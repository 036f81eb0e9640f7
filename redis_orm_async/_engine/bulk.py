"""The write script's bulk create, spelled straight from validated records.

A ``create_many`` of thousands of records keeps nothing per record but the record and text: an op
object, a dict of facts and a tuple per field for each of 10,000 records are objects the garbage
collector walks again and again while the list grows, and building them costs more than the
script call itself. So ``BulkWords`` folds each record's hash, state line, index entries and claims
into its chunk's words as it reads the record's stored texts, and notices two records of one
batch sharing an id or a unique value as it goes.

What a record's facts and entries are is ``_model/state.py``'s to say; the tests check these words
against it on the same records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .._errors import ValidationError
from .._model.keys import escape, value_token
from .._model.model import Model
from .._model.schema import ModelMeta
from .._model.state import LEX_SEPARATOR, fact_plan, layout


class _FieldWords(NamedTuple):
    """One field with facts: how its parts are made, and the index keys they go to."""

    name: str
    token_of: Callable[[str], str] | None
    score_of: Callable[[str], str] | None
    lex_key: str | None
    equality_head: str | None
    range_key: str | None


class _Plan(NamedTuple):
    fields: tuple[_FieldWords, ...]
    uniques: tuple[tuple[str, tuple[str, ...]], ...]
    """Per unique constraint, in the layout's order: the head of its claim keys, its fields."""


_PLAN = "_bulk_words_plan"


def _plan(meta: ModelMeta) -> _Plan:
    found: _Plan | None = meta.__dict__.get(_PLAN)
    if found is None:
        shape = layout(meta)
        base = shape.base
        fields = tuple(
            _FieldWords(
                name,
                token_of if needs[0] else None,
                score_of,
                f"{base}:l:{name}" if needs[2] else None,
                f"{base}:i:{name}:" if name in shape.equality else None,
                f"{base}:z:{name}" if name in shape.ranges else None,
            )
            for name, needs, token_of, score_of in fact_plan(meta)
        )
        uniques = tuple((f"{base}:u:{name}:", names) for name, names in shape.uniques)
        found = _Plan(fields, uniques)
        object.__setattr__(meta, _PLAN, found)
    return found


def shared_value(meta: ModelMeta, first: int, second: int) -> ValidationError:
    """Items ``first`` and ``second`` of one ``create_many`` share an id or a unique value."""
    return ValidationError(
        f"{meta.name}: items {first} and {second} of create_many share a unique value or id",
        meta={"model": meta.name, "items": (first, second)},
    )


class BulkWords:
    """The words of one bulk create (see ``bulk_create`` in ``_scripts/write.lua``), a record at a
    time, every record with the same ``ttl`` word ('' or ms). With ``seen`` (shared by the chunks
    of one batch), a record whose id or unique value an earlier one has is refused."""

    __slots__ = (
        "_at_id_score",
        "_at_zero",
        "_escapes",
        "_names",
        "_pairs",
        "_plan",
        "_records",
        "_seen",
        "count",
        "meta",
        "ttl",
    )

    def __init__(self, meta: ModelMeta, ttl: str, seen: dict[str, int] | None = None) -> None:
        self.meta = meta
        self.ttl = ttl
        self.count = 0
        self._plan = _plan(meta)
        self._seen = seen
        self._names: tuple[str, ...] = ()
        self._escapes = False
        """Whether some id's record key escapes it (the script then escapes every id)."""
        self._records: list[str] = []
        self._at_id_score: defaultdict[str, list[str]] = defaultdict(list)
        """Equality index keys and their members, each at its id's score."""
        self._at_zero: defaultdict[str, list[str]] = defaultdict(list)
        """Lex index keys and their members, at score 0."""
        self._pairs: defaultdict[str, list[str]] = defaultdict(list)
        """Range index keys and their (score, member) pairs."""

    def add(self, id_text: str, encoded: Mapping[str, str | None], position: int = 0) -> None:
        """One fresh record: its id's text and its stored texts (``ModelMeta.encode``: every
        record of a model has the same names in the same order)."""
        plan = self._plan
        seen = self._seen
        if seen is not None:
            if id_text in seen:
                raise shared_value(self.meta, seen[id_text], position)
            seen[id_text] = position
        if not self._names:
            self._names = tuple(encoded)
        if not self._escapes and escape(id_text) != id_text:
            self._escapes = True
        texts = [text for text in encoded.values() if text is not None]
        present = (
            "*"
            if len(texts) == len(self._names)
            else "".join(["0" if t is None else "1" for t in encoded.values()])
        )
        records = self._records
        records += (id_text, present)
        records += texts

        rows = []
        tokens = {}
        for name, token_of, score_of, lex_key, equality_head, range_key in plan.fields:
            text = encoded.get(name)
            token = score = lex = ""
            if token_of is not None:
                token = "-" if text is None else value_token(token_of(text))
                tokens[name] = token
                if equality_head is not None:
                    self._at_id_score[equality_head + token].append(id_text)
            if text is not None:
                if score_of is not None:
                    score = score_of(text)
                    if range_key is not None:
                        self._pairs[range_key] += (score, id_text)
                if lex_key is not None:
                    escaped = escape(text)
                    lex = "=" + escaped
                    self._at_zero[lex_key].append(escaped + LEX_SEPARATOR + id_text)
            rows.append(f"{name}\t{token}\t{score}\t{lex}")
        records.append("\n".join(rows))

        for head, names in plan.uniques:
            if len(names) == 1:  # the usual unique: one field
                token = value_token(id_text) if names[0] == "id" else tokens[names[0]]
                key = "" if token == "-" else head + token
            else:
                parts = [value_token(id_text) if name == "id" else tokens[name] for name in names]
                key = "" if "-" in parts else head + ":".join(parts)
            if key and seen is not None:
                if key in seen:
                    raise shared_value(self.meta, seen[key], position)
                seen[key] = position
            records.append(key)
        self.count += 1

    def words(self) -> list[str]:
        keys = "e" if self._escapes else "="
        words = [self.ttl, keys, str(len(self._names)), *self._names, str(self.count), *self._records]
        groups = len(self._at_id_score) + len(self._at_zero) + len(self._pairs)
        words.append(str(groups))
        for kind, members in (("m", self._at_id_score), ("0", self._at_zero), ("s", self._pairs)):
            for key, group in members.items():
                words.extend((key, kind, str(len(group))))
                words.extend(group)
        return words


def bulk_chunks(meta: ModelMeta, records: Sequence[Model], ttl_ms: int | None, size: int) -> list[list[str]]:
    """The bulk create words of each ``size`` records in turn, all spelled before any is sent: a
    record its field cannot store, or two records sharing an id or a unique value, are refused
    before anything is written."""
    seen: dict[str, int] = {}
    ttl = "" if ttl_ms is None else str(ttl_ms)
    id_text, encode = meta.id_text, meta.encode
    chunks = []
    for start in range(0, len(records), size):
        chunk = BulkWords(meta, ttl, seen)
        for position in range(start, min(start + size, len(records))):
            record = records[position]
            chunk.add(id_text(record.id), encode(record), position)
        chunks.append(chunk.words())
    return chunks
