"""One SQL statement being compiled: quoted names, aliases and parameters bound late.

Parameters are recorded as *sources* (a constant or a path into the variables) with the
conversion their column needs, so a cached statement is re-bound to new variables without
compiling again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.names import ident, in_service_schema, literal
from runtime.opencrud.model import ApiField, ApiModel
from runtime.opencrud.values import VarLeaf, lookup

ARRAY_TYPES = {
    "UUID": "uuid[]",
    "Int": "integer[]",
    "Float": "float8[]",
    "DateTime": "timestamp(3)[]",
    "Boolean": "boolean[]",
}
MAX_JSON_PAIRS = 50  # json_build_object takes at most 100 arguments


@dataclass
class Param:
    source: Any  # a constant or a VarLeaf
    convert: Callable[[Any], Any]

    def bind(self, variables: dict[str, Any]) -> Any:
        value = (
            lookup(variables, self.source.path) if isinstance(self.source, VarLeaf) else self.source
        )
        return None if value is None else self.convert(value)


@dataclass
class Statement:
    """Tables are named in the placeholder schema (`names.SERVICE_SCHEMA`): a compiled statement
    serves every service with the datamodel, each running it in its own schema."""

    params: list[Param] = field(default_factory=list)
    aliases: int = 0

    def table(self, model: ApiModel) -> str:
        return in_service_schema(model.table)

    def named_table(self, name: str) -> str:
        return in_service_schema(name)

    def alias(self) -> str:
        self.aliases += 1
        return f"t{self.aliases}"

    def param(self, value: Any, convert: Callable[[Any], Any] = lambda v: v) -> str:
        self.params.append(Param(value, convert))
        return "%s"

    def bind(self, variables: dict[str, Any]) -> list[Any]:
        return [p.bind(variables) for p in self.params]


def column(alias: str, f: ApiField) -> str:
    return f"{alias}.{ident(f.column)}"


def array_type(f: ApiField) -> str:
    return ARRAY_TYPES.get(f.type_name, "text[]")


def json_object(pairs: list[tuple[str, str]]) -> str:
    """`json_build_object` for any number of keys (chunks merge through jsonb)."""
    chunks = [pairs[i : i + MAX_JSON_PAIRS] for i in range(0, len(pairs), MAX_JSON_PAIRS)] or [[]]
    built = [
        "json_build_object(" + ", ".join(f"{literal(k)}, {v}" for k, v in chunk) + ")"
        for chunk in chunks
    ]
    if len(built) == 1:
        return built[0]
    return "(" + " || ".join(f"{b}::jsonb" for b in built) + ")::json"


def related_condition(st: Statement, f: ApiField, parent: str, child: str) -> str:
    """SQL true for the rows `child` of `f`'s related model linked to the row `parent`."""
    target_id = f"{child}.{ident(_target_id(f).column)}"
    own_id = column(parent, f.model.id_field)
    if f.is_inline_here:
        return f"{target_id} = {parent}.{ident(f.inline_column)}"
    if f.is_inline_there:
        return f"{child}.{ident(f.inline_column)} = {own_id}"
    assert f.relation is not None
    mine, theirs = f.link_columns
    link = st.named_table(f.relation.table)
    return (
        f"{target_id} IN (SELECT l.{ident(theirs)} FROM {link} l "  # noqa: S608 - quoted names
        f"WHERE l.{ident(mine)} = {own_id})"
    )


def _target_id(f: ApiField) -> ApiField:
    """The id field of the related model (through the relation's other model)."""
    assert f.relation is not None
    return f.target.id_field
