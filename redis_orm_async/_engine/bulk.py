"""The write script's bulk create, spelled straight from validated records.

A ``create_many`` of thousands of records keeps nothing per record but the record and text: an op
object, a dict of facts and a tuple per field for each of 10,000 records are objects the garbage
collector walks again and again while the list grows, and building them costs more than the
script call itself. So ``BulkWords`` folds each record's hash, state line, index entries and claims
into its chunk's words as it reads the record's stored texts, and notices two records of one
batch sharing an id or a unique value as it goes.

It sends each id once: every word costs the client's packer and the server's argument table more
than the script pays to repeat the id itself (in the record key, the id ZSET, the state lines, an
equality entry's score, a range entry's member), so the benchmark's user takes 9 words, where
spelling out every entry took 24.

What a record's facts and entries are is ``_model/state.py``'s to say; the tests check these words
against it on the same records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .._errors import ValidationError
from .._model.codec import same_text
from .._model.keys import MAX_INLINE_VALUE, escape, value_token
from .._model.model import Model
from .._model.schema import ModelMeta
from .._model.state import LEX_SEPARATOR, fact_plan, layout


class _FieldWords(NamedTuple):
    """One field with facts: how its parts are made, and the index keys they go to."""

    name: str
    tokenize: Callable[[str], str] | None
    """The value token of a stored text (None: the field needs none)."""
    plain: bool
    """The stored text is its own token text (``same_text``): a short alphanumeric text is
    ``=`` and itself, with no call."""
    score_of: Callable[[str], str] | None
    lex_key: str | None
    equality_head: str | None
    ranged: bool
    """A range index: the record sends its score after its claims (the script adds the member)."""


class _Plan(NamedTuple):
    fields: tuple[_FieldWords, ...]
    uniques: tuple[tuple[str, tuple[str, ...]], ...]
    """Per unique constraint, in the layout's order: the head of its claim keys, its fields."""


_PLAN = "_bulk_words_plan"
_SHORT = MAX_INLINE_VALUE // 4
"""Characters a text may have and never be digested in a key (4 bytes at most each)."""


def _plan(meta: ModelMeta) -> _Plan:
    found: _Plan | None = meta.__dict__.get(_PLAN)
    if found is None:
        shape = layout(meta)
        base = shape.base
        fields = tuple(
            _FieldWords(
                name,
                (value_token if token_of is same_text else _tokenizer(token_of)) if needs[0] else None,
                token_of is same_text,
                score_of,
                f"{base}:l:{name}" if needs[2] else None,
                f"{base}:i:{name}:" if name in shape.equality else None,
                name in shape.ranges,
            )
            for name, needs, token_of, score_of in fact_plan(meta)
        )
        uniques = tuple((f"{base}:u:{name}:", names) for name, names in shape.uniques)
        found = _Plan(fields, uniques)
        object.__setattr__(meta, _PLAN, found)
    return found


def _tokenizer(token_of: Callable[[str], str]) -> Callable[[str], str]:
    return lambda text: value_token(token_of(text))


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
        "_partial",
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
        self._partial: list[str] = []
        """(position, presence mask) of each record without every name, positions from 1."""

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
        if not self._escapes and not id_text.isalnum() and escape(id_text) != id_text:
            self._escapes = True
        records = self._records
        records.append(id_text)
        values = encoded.values()
        if None in values:
            self._partial += (str(self.count + 1), "".join(["0" if text is None else "1" for text in values]))
            records += [text for text in values if text is not None]
        else:
            records += values  # type: ignore[arg-type]  # no None among them

        rows = []
        tokens = {}
        scores = []
        for name, tokenize, plain, score_of, lex_key, equality_head, ranged in plan.fields:
            text = encoded.get(name)
            token = score = lex = ""
            if tokenize is not None:
                if text is None:
                    token = "-"
                elif plain and len(text) <= _SHORT and text.isalnum():  # what value_token makes of it
                    token = "=" + text
                else:
                    token = tokenize(text)
                tokens[name] = token
                if equality_head is not None:
                    self._at_id_score[equality_head + token].append(id_text)
            if text is not None:
                if score_of is not None:
                    score = score_of(text)
                if lex_key is not None:
                    escaped = escape(text)
                    lex = "=" + escaped
                    self._at_zero[lex_key].append(escaped + LEX_SEPARATOR + id_text)
            rows.append(f"{name}\t{token}\t{score}\t{lex}")
            if ranged:
                scores.append(score)
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
        records += scores
        self.count += 1

    def words(self) -> list[str]:
        keys = "e" if self._escapes else "="
        words = [self.ttl, keys, str(len(self._names)), *self._names, str(len(self._partial) // 2)]
        words += self._partial
        words.append(str(self.count))
        words += self._records
        words.append(str(len(self._at_id_score) + len(self._at_zero)))
        for kind, members in (("m", self._at_id_score), ("0", self._at_zero)):
            for key, group in members.items():
                words += (key, kind, str(len(group)))
                words += group
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
