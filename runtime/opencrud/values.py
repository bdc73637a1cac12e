"""Argument values: where they come from (literal or variable) and how they reach SQL.

Compiled SQL is cached per document, operation and *shape* of the variables, so a value taken
from a variable must stay a reference (`VarLeaf`) until the statement runs; literals are
constants. The shape keeps what changes the SQL text (nulls, list lengths, object keys, enum
and boolean values, top-level integers such as `first`), and drops the rest (strings, floats,
nested numbers), which become parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql import (
    EnumValueNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLID,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLString,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    value_from_ast,
)

from runtime.opencrud.errors import input_invalid, invalid_json


@dataclass(frozen=True)
class VarLeaf:
    """A scalar taken from the request's variables, by its path."""

    path: tuple[str | int, ...]
    value: Any


def nullable(t: GraphQLInputType) -> GraphQLInputType:
    return t.of_type if isinstance(t, GraphQLNonNull) else t


def resolve(node: ValueNode, t: GraphQLInputType, variables: dict[str, Any]) -> Any:
    """A literal argument as Python data; variables inside it become `VarLeaf`s."""
    t = nullable(t)
    if isinstance(node, VariableNode):
        name = node.name.value
        return wrap(variables.get(name), t, (name,))
    if type(node) is StringValueNode and (t is GraphQLString or t is GraphQLID):
        return node.value  # what `value_from_ast` gives, without its checks (validated already)
    if isinstance(node, NullValueNode):
        return None
    if isinstance(t, GraphQLList):
        items = node.values if isinstance(node, ListValueNode) else (node,)
        return [resolve(item, t.of_type, variables) for item in items]
    if isinstance(t, GraphQLInputObjectType) and isinstance(node, ObjectValueNode):
        return {
            f.name.value: resolve(f.value, t.fields[f.name.value].type, variables)
            for f in node.fields
        }
    if isinstance(node, EnumValueNode):
        return node.value
    return value_from_ast(node, t)


def wrap(value: Any, t: GraphQLInputType, path: tuple[str | int, ...]) -> Any:
    """A (coerced) variable value with its parameter-worthy leaves marked."""
    t = nullable(t)
    if value is None:
        return None
    if isinstance(t, GraphQLList):
        items = value if isinstance(value, list) else [value]
        return [wrap(v, t.of_type, (*path, i)) for i, v in enumerate(items)]
    if isinstance(t, GraphQLInputObjectType):
        return {k: wrap(v, t.fields[k].type, (*path, k)) for k, v in value.items() if k in t.fields}
    if (
        isinstance(t, GraphQLEnumType)
        or t is GraphQLBoolean
        or (t is GraphQLInt and len(path) == 1)
    ):
        return value
    return VarLeaf(path, value)


def shape(value: Any, t: GraphQLInputType, top: bool = True) -> Any:
    """The hashable part of a variable value that changes the SQL text (see module doc)."""
    t = nullable(t)
    if value is None:
        return None
    if isinstance(t, GraphQLList):
        items = value if isinstance(value, list) else [value]
        return tuple(shape(v, t.of_type, False) for v in items)
    if isinstance(t, GraphQLInputObjectType):
        if not isinstance(value, dict):
            return "?"
        return tuple(
            sorted(
                (k, shape(v, t.fields[k].type, False)) for k, v in value.items() if k in t.fields
            )
        )
    if isinstance(t, GraphQLEnumType) or t is GraphQLBoolean or (t is GraphQLInt and top):
        return value
    return "·"


def plain(value: Any) -> Any:
    """The value with every `VarLeaf` replaced by what it holds (for checks and messages)."""
    if isinstance(value, VarLeaf):
        return value.value
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def lookup(variables: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    value: Any = variables
    for i, key in enumerate(path):
        if isinstance(key, int) and not isinstance(value, list):
            continue  # a single value coerced into a one-element list
        value = value[key] if i or key in variables else None
    return value


# Conversions to what the column stores ----------------------------------------------------

_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d\d)(?:-(\d\d)(?:[T ](\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?)?)?"
    r"(Z|[+-]\d\d:?\d\d)?$"
)


def to_datetime(value: Any, field: str = "") -> datetime:
    """Partial ISO values as Prisma accepts them (`"2016"` is 2016-01-01), stored as UTC."""
    if isinstance(value, datetime):
        return value
    match = _DATETIME.match(str(value).strip())
    if match is None:
        raise input_invalid(json.dumps(value), field, "DateTime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0),
            int(second or 0), micro, tzinfo=UTC,
        )  # fmt: skip
        if zone and zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    except ValueError as exc:
        raise input_invalid(json.dumps(value), field, "DateTime") from exc
    return moment.replace(tzinfo=None)


def to_json_text(value: Any, field: str = "") -> str:
    """Json arrives as a string holding JSON (literals) or as JSON itself (variables)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
            ok = False
        else:
            ok = True
        if not ok or not isinstance(parsed, dict | list):
            raise invalid_json(field, value)
        return value
    if not isinstance(value, dict | list):
        raise invalid_json(field, json.dumps(value))
    return json.dumps(value)


Converter = Callable[[Any], Any]


def converter(type_name: str, field: str = "") -> Converter:
    """How a value of a GraphQL scalar (or enum) type is handed to PostgreSQL."""
    if type_name == "DateTime":
        return lambda v: to_datetime(v, field)
    if type_name == "Json":
        return lambda v: to_json_text(v, field)
    if type_name == "Float":
        return float
    if type_name == "Int":
        return int
    return lambda v: v
