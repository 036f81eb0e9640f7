"""Write operations as data: what the caller asked for, already validated and encoded.

Each operation turns into the words ``_scripts/write.lua`` reads (``words``), and turns the
script's answer into what the caller gets back (``accept``). ``_engine/overlay.py`` applies the
same operations in Python for servers that refuse scripts. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from .._errors import ValidationError
from .._model.model import FieldOptions, Model
from .._model.schema import ModelMeta
from .._model.state import Fact, Facts, claim_keys, field_fact, layout, record_facts, state_line
from .._query.changes import FieldChange
from .._query.locate import Locator
from .._query.ttl import Expiry

NO_FACT = Fact()
ChangeKind = Literal["s", "n", "i"]
"""Set a stored text, make the field null, or add an integer to it."""


@dataclass(frozen=True, slots=True)
class Change:
    """One field's change as the server applies it: ``value`` is the new text ('s') or the
    integer to add ('i'); ``fact`` is the field's new index fact ('s', 'n')."""

    name: str
    kind: ChangeKind
    value: str = ""
    fact: Fact = NO_FACT


def pairs_of(hash_reply: Any) -> dict[str, str]:
    """A record as the script answers it, ``[field, text, ...]``, as a dict."""
    if isinstance(hash_reply, dict):
        return hash_reply
    return dict(zip(hash_reply[::2], hash_reply[1::2], strict=True))


def locator_words(locator: Locator) -> list[str]:
    if locator.id_text is not None:
        return ["i", locator.id_text]
    assert locator.claim is not None
    return ["c", locator.claim]


def expect_words(expect: Mapping[str, str] | None) -> list[str]:
    if expect is None:
        return ["-"]
    words = [str(len(expect))]
    for name, text in expect.items():
        words.extend((name, text))
    return words


def expiry_word(expiry: Expiry) -> str:
    if expiry == "keep":
        return "k"
    if expiry == "persist":
        return "p"
    return str(expiry)


class WriteOp:
    """One operation of a batch; ``result`` holds what the caller gets once it has run."""

    kind: ClassVar[str]
    meta: ModelMeta
    result: Any = None

    def words(self) -> list[str]:
        raise NotImplementedError

    def accept(self, reply: Any) -> None:
        self.result = reply


class CreateOp(WriteOp):
    """Store a new record; refused when a live record has its id."""

    kind = "C"
    __slots__ = ("_claims", "_facts", "encoded", "fresh", "id_text", "instance", "meta", "result", "ttl_ms")

    def __init__(self, meta: ModelMeta, instance: Model, ttl_ms: int | None) -> None:
        self.meta = meta
        self.instance = instance
        self.id_text = meta.id_text(instance.id)
        self.fresh = meta.id_kind == "generated" and not meta.id_supplied(instance)
        """The id was generated for this create: no record can have it, nothing need be read."""
        self.result = None
        self.ttl_ms = ttl_ms
        self.encoded = meta.encode(instance)
        """Each field's stored text (None: absent); the rest is worked out when first asked, as a
        fresh create sends ``BulkWords`` of these texts and needs none of it."""
        self._facts: Facts | None = None
        self._claims: dict[str, str] | None = None

    @property
    def writes(self) -> tuple[tuple[str, str], ...]:
        """The hash fields the record is stored with (its id aside)."""
        return tuple([(name, text) for name, text in self.encoded.items() if text is not None])

    @property
    def facts(self) -> Facts:
        if self._facts is None:
            self._facts = record_facts(self.meta, self.encoded)
        return self._facts

    @property
    def line(self) -> str:
        return state_line(self.meta, self.facts)

    @property
    def claims(self) -> dict[str, str]:
        """The unique claims the new record takes: claim key to constraint."""
        if self._claims is None:
            self._claims = claim_keys(self.meta, self.id_text, self.facts)
        return self._claims

    def words(self) -> list[str]:
        ttl = "" if self.ttl_ms is None else str(self.ttl_ms)
        writes = self.writes
        words = [self.id_text, ttl, "n" if self.fresh else "-", str(len(writes))]
        for name, text in writes:
            words.extend((name, text))
        words.append(self.line)
        facts = self.facts
        for name in layout(self.meta).order:
            fact = facts[name]
            words.extend((fact.token, fact.score, fact.lex))
        return words

    def accept(self, reply: Any) -> None:
        self.result = self.instance


class UpdateOp(WriteOp):
    """Apply changes to the record a locator finds; with ``create``, an upsert. ``expect`` is the
    record as the caller read it: if it changed since, the batch fails with a conflict."""

    kind = "U"

    def __init__(
        self,
        meta: ModelMeta,
        locator: Locator,
        changes: Sequence[Change],
        expiry: Expiry = "keep",
        *,
        expect: Mapping[str, str] | None = None,
        create: CreateOp | None = None,
    ) -> None:
        self.meta = meta
        self.locator = locator
        self.changes = list(changes)
        self.expiry = expiry
        self.expect = expect
        self.create = create

    def words(self) -> list[str]:
        words = [*locator_words(self.locator), *expect_words(self.expect), expiry_word(self.expiry)]
        words.append(str(len(self.changes)))
        for change in self.changes:
            fact = change.fact
            words.extend((change.name, change.kind, change.value, fact.token, fact.score, fact.lex))
        if self.create is None:
            words.append("-")
        else:
            words.extend(("C", *self.create.words()))
        return words

    def accept(self, reply: Any) -> None:
        self.result = None if not reply else decode_reply(self.meta, reply)


class DeleteOp(WriteOp):
    """Remove the record a locator finds; the result is the record as it was, or None."""

    kind = "D"

    def __init__(self, meta: ModelMeta, locator: Locator, *, expect: Mapping[str, str] | None = None) -> None:
        self.meta = meta
        self.locator = locator
        self.expect = expect

    def words(self) -> list[str]:
        return [*locator_words(self.locator), *expect_words(self.expect)]

    def accept(self, reply: Any) -> None:
        self.result = None if not reply else decode_reply(self.meta, reply)


class TouchOp(WriteOp):
    """Give the record a locator finds a new expiry; its claims follow it."""

    kind = "T"

    def __init__(self, meta: ModelMeta, locator: Locator, expiry: Expiry) -> None:
        self.meta = meta
        self.locator = locator
        self.expiry = expiry

    def words(self) -> list[str]:
        return [*locator_words(self.locator), expiry_word(self.expiry)]

    def accept(self, reply: Any) -> None:
        self.result = None if not reply else decode_reply(self.meta, reply)


class SweepOp(WriteOp):
    """Remove the leftovers of up to ``limit`` due records; the result is (swept, examined)."""

    kind = "S"

    def __init__(self, meta: ModelMeta, limit: int) -> None:
        self.meta = meta
        self.limit = limit

    def words(self) -> list[str]:
        return [str(self.limit)]

    def accept(self, reply: Any) -> None:
        swept, examined = reply
        self.result = (int(swept), int(examined))


class CleanOp(WriteOp):
    """Remove the leftovers of these ids where their records are gone; the result is how many."""

    kind = "X"

    def __init__(self, meta: ModelMeta, ids: Sequence[str]) -> None:
        self.meta = meta
        self.ids = list(ids)

    def words(self) -> list[str]:
        return [str(len(self.ids)), *self.ids]

    def accept(self, reply: Any) -> None:
        self.result = int(reply)


def decode_reply(meta: ModelMeta, reply: Any) -> Model:
    stored = pairs_of(reply)
    return meta.decode(stored["id"], stored)


def set_change(meta: ModelMeta, name: str, text: str | None) -> Change:
    """Set one field to a stored text (None: null), with the fact the index needs."""
    fact = field_fact(meta, name, text)
    if text is None:
        return Change(name, "n", "", fact)
    return Change(name, "s", text, fact)


def plain_changes(meta: ModelMeta, changes: Mapping[str, FieldChange]) -> list[Change] | None:
    """The changes the server can apply without the caller reading the record first, or None.

    A value set is validated alone (so the model must not validate fields together) and an
    integer added to a plain int field is exact on the server; anything else (multiply, a float
    or Decimal counter, a constrained field) is computed by the caller from the record it read.
    """
    if not independent_fields(meta):
        return None
    out: list[Change] = []
    for name, change in changes.items():
        if change.op == "set":
            value = change.value
            if value is None and name in meta.null_marked:
                return None  # the record's NULLS list changes too: computed from the record
            out.append(set_change(meta, name, None if value is None else meta.fields[name].text(value)))
        elif change.op in ("increment", "decrement") and _exact_counter(meta, name, change.value):
            delta = change.value if change.op == "increment" else -change.value
            out.append(Change(name, "i", str(delta)))
        else:
            return None
    return out


def _exact_counter(meta: ModelMeta, name: str, operand: Any) -> bool:
    field = meta.fields[name]
    return (
        field.codec.kind == "int"
        and isinstance(operand, int)
        and not isinstance(operand, bool)
        and all(isinstance(item, FieldOptions) for item in meta.model.model_fields[field.attr].metadata)
    )


def independent_fields(meta: ModelMeta) -> bool:
    """True when validating each field alone is validating the record: no model validators and
    no field validators, which may read other fields."""
    decorators = meta.model.__pydantic_decorators__
    return not (decorators.model_validators or decorators.field_validators)


def diff_changes(meta: ModelMeta, old: Mapping[str, str], new: Model) -> list[Change]:
    """Set changes that turn the stored ``old`` into ``new``: only the fields that differ."""
    out = []
    for name, text in meta.encode(new).items():
        if old.get(name) != text:
            out.append(set_change(meta, name, text))
    return out


def check_supplied_id(meta: ModelMeta, data: Mapping[str, Any] | Model) -> None:
    """A generated-id model takes no id from its caller (a request body cannot choose ids) unless
    it declares ``supplied_ids=True``; then a supplied id is create-if-absent."""
    if meta.id_kind != "generated" or meta.supplied_ids:
        return
    if meta.id_supplied(data):
        raise ValidationError(
            f"{meta.name} ids are generated: create takes no id (declare the model with "
            "supplied_ids=True to accept one, as create-if-absent)",
            meta={"model": meta.name, "field": "id"},
        )


class DeleteIndexedOp(WriteOp):
    """Delete up to ``limit`` records of one equality index key (each only if its state still
    puts it there); the result is (deleted, examined). Script-only: without scripts, bulk deletes
    read and test each record instead."""

    kind = "Y"

    def __init__(self, meta: ModelMeta, key: str, limit: int) -> None:
        self.meta = meta
        self.key = key
        self.limit = limit

    def words(self) -> list[str]:
        return [self.key, str(self.limit)]

    def accept(self, reply: Any) -> None:
        deleted, examined = reply
        self.result = (int(deleted), int(examined))


class RebuildOp(WriteOp):
    """Repair: rebuild one live record's entries, claims and state line from the hash it was
    read with; the result is ``"gone"``, ``"changed"`` or the constraints another record holds."""

    kind = "R"

    def __init__(self, meta: ModelMeta, id_text: str, stored: Mapping[str, str]) -> None:
        self.meta = meta
        self.id_text = id_text
        self.stored = dict(stored)
        self.line = state_line(meta, record_facts(meta, stored))

    def words(self) -> list[str]:
        return [self.id_text, *expect_words(self.stored), self.line]

    def accept(self, reply: Any) -> None:
        self.result = reply[0] if reply[0] != "ok" else list(reply[1:])


PruneKind = Literal["z", "l", "c", "s", "e"]


class PruneOp(WriteOp):
    """Repair: remove the members of one index key (``z``; ``l`` for a lex ZSET), claim keys
    (``c``), state lines (``s``) or expiry entries (``e``) that no record implies; the result is
    how many went."""

    kind = "P"

    def __init__(self, meta: ModelMeta, key: str, member_kind: PruneKind, members: Sequence[str]) -> None:
        self.meta = meta
        self.key = key
        self.member_kind = member_kind
        self.members = list(members)

    def words(self) -> list[str]:
        return [self.key, self.member_kind, str(len(self.members)), *self.members]

    def accept(self, reply: Any) -> None:
        self.result = int(reply)
