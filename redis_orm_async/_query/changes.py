"""Update data: plain values, and Prisma-style atomic number operations on numeric fields.

``{"hits": {"increment": 1}}`` is computed from the value read inside the guarded write, so it is
exact under concurrency on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from .._errors import ValidationError
from .._model.codec import preview
from .._model.schema import ModelMeta

NumberOp = Literal["set", "increment", "decrement", "multiply", "divide"]
NUMBER_OPS: frozenset[str] = frozenset({"set", "increment", "decrement", "multiply", "divide"})
NUMERIC_KINDS: frozenset[str] = frozenset({"int", "float", "decimal"})


@dataclass(frozen=True, slots=True)
class FieldChange:
    op: NumberOp
    value: Any

    def apply(self, current: Any) -> Any:
        if self.op == "set":
            return self.value
        if current is None:
            raise ValidationError(f"cannot {self.op} a null value")
        if self.op == "increment":
            return current + self.value
        if self.op == "decrement":
            return current - self.value
        if self.op == "multiply":
            return current * self.value
        if isinstance(current, int) and not isinstance(current, bool):
            return current // self.value
        return current / self.value


def parse_changes(meta: ModelMeta, data: Mapping[str, Any]) -> dict[str, FieldChange]:
    """Check update data before any I/O: known fields, valid values, id left alone. Fields are
    named by attribute; the changes come back keyed by stored name, as the engine knows them."""
    if not isinstance(data, Mapping):
        raise ValidationError(f"{meta.name} update data must be a mapping")
    changes: dict[str, FieldChange] = {}
    for name, value in data.items():
        if name == "id":
            raise ValidationError(f"{meta.name}.id cannot be changed by an update")
        field = meta.field(name)
        if field is None:
            raise ValidationError(
                f"{meta.name} has no field {preview(name)}{meta.field_hint(name)}",
                meta={"field": name, "model": meta.name},
            )
        if (
            isinstance(value, Mapping)
            and len(value) == 1
            and next(iter(value)) in NUMBER_OPS
            and field.codec.kind != "json"
        ):
            op, operand = next(iter(value.items()))
            if op == "set":
                changes[field.name] = FieldChange("set", field.parse(operand))
                continue
            if field.codec.kind not in NUMERIC_KINDS:
                raise ValidationError(
                    f"{meta.name}.{name}: {op} needs a numeric field, not {field.codec.kind}",
                    meta={"field": name},
                )
            changes[field.name] = FieldChange(op, _operand(meta, name, field.codec.kind, op, operand))
        else:
            changes[field.name] = FieldChange("set", field.parse(value))
    return changes


def _operand(meta: ModelMeta, name: str, kind: str, op: str, operand: Any) -> Any:
    """A number operation's operand, checked before any I/O: a number (not NaN) of a type the field
    can compute with (an int for an int field, no float for a Decimal one), never zero to divide;
    a result the field cannot store (NaN from inf - inf, say) is refused when it is encoded."""
    if isinstance(operand, bool) or not isinstance(operand, int | float | Decimal):
        problem = f"needs a number, got {type(operand).__name__}"
    elif (isinstance(operand, float) and math.isnan(operand)) or (
        isinstance(operand, Decimal) and operand.is_nan()
    ):
        problem = "needs a number, not NaN"
    elif kind == "int" and not isinstance(operand, int):
        problem = f"on an int field needs an int, got {type(operand).__name__}"
    elif kind == "decimal" and isinstance(operand, float):
        problem = "on a Decimal field needs an int or a Decimal, not a float (which is inexact)"
    elif op == "divide" and operand == 0:
        problem = "cannot divide by zero"
    else:
        return operand
    raise ValidationError(f"{meta.name}.{name}: {op} {problem}", meta={"model": meta.name, "field": name})
