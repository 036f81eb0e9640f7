"""A mypy plugin that checks the dict form of queries where it is written as a literal.

Enable it next to Pydantic's: ``plugins = ["pydantic.mypy", "redis_orm_async.mypy"]``. For each
``Repository[M]`` call it reads the dict literals given as ``where``, ``order_by``, ``data``,
``create``, ``update``, ``select`` and ``include`` and reports, as ``[orm-query]`` errors, a field
name ``M`` does not declare, an operator name that does not exist, an ``order_by`` direction
other than ``"asc"``/``"desc"`` and a relation ``M`` does not declare (nested relation options are
checked against the relation's target). Values are left to run time, which normalizes them
through the field's type (``"7"`` is a valid int there). A dict built elsewhere is not checked.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.errorcodes import ErrorCode
from mypy.nodes import DictExpr, Expression, ListExpr, StrExpr, TupleExpr, TypeInfo, Var
from mypy.plugin import MethodContext, Plugin
from mypy.types import Instance, Type, UnionType, get_proper_type

ORM_QUERY = ErrorCode("orm-query", "Check the dict form of redis_orm_async queries", "Plugins")
REPOSITORY = "redis_orm_async._repository.Repository."
OPERATORS = frozenset({"eq", "in", "not", "gt", "gte", "lt", "lte", "contains", "startswith"})
NUMBER_OPS = frozenset({"set", "increment", "decrement", "multiply", "divide"})
NESTED_OPTIONS = frozenset({"where", "order_by", "take", "skip", "select", "include"})
RELATIONS = frozenset(
    f"redis_orm_async._model.relations.{name}" for name in ("BelongsTo", "HasOne", "HasMany", "ManyToMany")
)
SKIPPED = frozenset({"builtins.object", "pydantic.main.BaseModel"})
VALUE_TYPES = frozenset({"builtins.dict", "builtins.list", "typing.Mapping", "typing.Sequence"})
"""Field types whose values are themselves mappings (JSON fields): their dicts are values."""


class _Model:
    """What a model class declares, read from mypy's view of it."""

    def __init__(self, info: TypeInfo) -> None:
        self.name = info.name
        self.fields: dict[str, Type | None] = {}
        self.relations: dict[str, TypeInfo | None] = {}
        for klass in reversed(info.mro):
            if klass.fullname in SKIPPED:
                continue
            for name, symbol in klass.names.items():
                node = symbol.node
                if not isinstance(node, Var) or name.startswith("_") or name == "model_config":
                    continue
                declared = get_proper_type(node.type) if node.type is not None else None
                if isinstance(declared, Instance) and declared.type.fullname in RELATIONS:
                    target = get_proper_type(declared.args[0]) if declared.args else None
                    self.relations[name] = target.type if isinstance(target, Instance) else None
                elif not node.is_classvar:
                    self.fields[name] = node.type

    def holds_mappings(self, name: str) -> bool:
        declared = get_proper_type(self.fields.get(name))
        items = declared.items if isinstance(declared, UnionType) else [declared]
        for item in items:
            proper = get_proper_type(item)
            if isinstance(proper, Instance) and (
                proper.type.fullname in VALUE_TYPES or proper.type.has_base("pydantic.main.BaseModel")
            ):
                return True
        return False


class _Checker:
    def __init__(self, ctx: MethodContext) -> None:
        self.ctx = ctx

    def fail(self, message: str, node: Expression) -> None:
        self.ctx.api.fail(message, node, code=ORM_QUERY)

    def literal_items(self, node: Expression) -> list[tuple[str, Expression, Expression]]:
        """A dict literal's string keys with their key and value nodes."""
        if not isinstance(node, DictExpr):
            return []
        return [(key.value, key, value) for key, value in node.items if isinstance(key, StrExpr)]

    def where(self, model: _Model, node: Expression) -> None:
        if isinstance(node, ListExpr | TupleExpr):
            for item in node.items:
                self.where(model, item)
            return
        for name, key, value in self.literal_items(node):
            if name in ("AND", "OR", "NOT"):
                self.where(model, value)
            elif name != "id" and name not in model.fields:
                what = "a relation (load it with include)" if name in model.relations else "not a field"
                self.fail(f'"{name}" is {what} of {model.name}', key)
            elif not (name != "id" and model.holds_mappings(name)):
                self.operators(model, value)

    def operators(self, model: _Model, node: Expression) -> None:
        for name, key, value in self.literal_items(node):
            if name not in OPERATORS:
                self.fail(f'"{name}" is not a where operator; use one of {", ".join(sorted(OPERATORS))}',
                          key)  # fmt: skip
            elif name == "not":
                self.operators(model, value)

    def order(self, model: _Model, node: Expression) -> None:
        if isinstance(node, ListExpr | TupleExpr):
            for item in node.items:
                self.order(model, item)
            return
        for name, key, value in self.literal_items(node):
            if name != "id" and name not in model.fields:
                self.fail(f'"{name}" is not a field of {model.name} to order by', key)
            if isinstance(value, StrExpr) and value.value not in ("asc", "desc"):
                self.fail(f'order_by direction must be "asc" or "desc", not "{value.value}"', value)

    def data(self, model: _Model, node: Expression, changes: bool) -> None:
        if isinstance(node, ListExpr | TupleExpr):
            for item in node.items:
                self.data(model, item, changes)
            return
        for name, key, value in self.literal_items(node):
            if name != "id" and name not in model.fields:
                self.fail(f'"{name}" is not a field of {model.name}', key)
            elif changes and not model.holds_mappings(name):
                for op, op_key, _ in self.literal_items(value):
                    if op not in NUMBER_OPS:
                        listed = ", ".join(sorted(NUMBER_OPS))
                        self.fail(f'"{op}" is not an update operator; use one of {listed}', op_key)

    def selection(self, model: _Model, node: Expression, select: bool) -> None:
        for name, key, value in self.literal_items(node):
            if name in model.relations:
                target = model.relations[name]
                if target is not None:
                    self.nested(_Model(target), value)
            elif not select:
                self.fail(f'"{name}" is not a relation of {model.name}', key)
            elif name != "id" and name not in model.fields:
                self.fail(f'"{name}" is not a field or relation of {model.name}', key)

    def nested(self, model: _Model, node: Expression) -> None:
        for name, key, value in self.literal_items(node):
            if name not in NESTED_OPTIONS:
                listed = ", ".join(sorted(NESTED_OPTIONS))
                self.fail(f'"{name}" is not a relation option; use one of {listed}', key)
            elif name == "where":
                self.where(model, value)
            elif name == "order_by":
                self.order(model, value)
            elif name in ("select", "include"):
                self.selection(model, value, name == "select")


def _check(method: str, ctx: MethodContext) -> Type:
    repository = get_proper_type(ctx.type)
    if not isinstance(repository, Instance) or not repository.args:
        return ctx.default_return_type
    target = get_proper_type(repository.args[0])
    if not isinstance(target, Instance):
        return ctx.default_return_type
    model = _Model(target.type)
    checker = _Checker(ctx)
    for formal, actuals in zip(ctx.callee_arg_names, ctx.args, strict=False):
        for node in actuals:
            if formal == "where":
                checker.where(model, node)
            elif formal == "order_by":
                checker.order(model, node)
            elif formal in ("data", "create") or (formal == "update" and method == "upsert"):
                changes = method in ("update", "update_many") or (method, formal) == ("upsert", "update")
                checker.data(model, node, changes)
            elif formal in ("select", "include"):
                checker.selection(model, node, formal == "select")
    return ctx.default_return_type


class RedisOrmPlugin(Plugin):
    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        if fullname.startswith(REPOSITORY):
            method = fullname[len(REPOSITORY) :]
            return lambda ctx: _check(method, ctx)
        return None


def plugin(version: str) -> type[Plugin]:
    """mypy's entry point."""
    return RedisOrmPlugin
