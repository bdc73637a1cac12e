"""`<Model>WhereInput` and `<Model>ScalarWhereInput` as SQL conditions (reference 5.3).

Semantics follow the Scala connector's `FilterConditionBuilder`: several keys are ANDed,
`NOT: [a, b]` is `NOT a AND NOT b`, `_not` is SQL `<>` (rows holding null do not match),
`_in: null` matches everything, relation filters are `EXISTS` sub-selects.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from runtime.names import ident
from runtime.opencrud.errors import to_many_null_filter
from runtime.opencrud.model import ApiField, ApiModel
from runtime.opencrud.statement import Statement, array_type, column, related_condition
from runtime.opencrud.values import converter

SCALAR_SUFFIXES = (
    "_not_starts_with", "_not_ends_with", "_not_contains", "_starts_with", "_ends_with",
    "_contains", "_not_in", "_not", "_in", "_lte", "_lt", "_gte", "_gt",
)  # fmt: skip
COMPARISONS = {"_lt": "<", "_lte": "<=", "_gt": ">", "_gte": ">="}


@cache
def filter_keys(model: ApiModel) -> dict[str, tuple[ApiField, str]]:
    """Every filter key of the model's where input -> (field, suffix)."""
    keys: dict[str, tuple[ApiField, str]] = {}
    for f in model.fields:
        if f.is_relation:
            if f.is_list:
                for suffix in ("_every", "_some", "_none"):
                    keys[f.name + suffix] = (f, suffix)
            else:
                keys[f.name] = (f, "")
        elif not f.is_list:
            keys[f.name] = (f, "")
            for suffix in SCALAR_SUFFIXES:
                keys[f.name + suffix] = (f, suffix)
    return keys


def where_condition(
    st: Statement, model: ApiModel, alias: str, where: dict[str, Any] | None
) -> str:
    """A boolean SQL expression for the rows of `alias` that match `where`."""
    if not where:
        return "TRUE"
    parts = []
    for key, value in where.items():
        if key in ("AND", "OR", "NOT"):
            items = value if isinstance(value, list) else [] if value is None else [value]
            conditions = [where_condition(st, model, alias, item) for item in items]
            if key == "AND":
                parts.append(_join(conditions, "AND", "TRUE"))
            elif key == "OR":
                parts.append(_join(conditions, "OR", "FALSE"))
            else:
                parts.append(_join([f"NOT ({c})" for c in conditions], "AND", "TRUE"))
            continue
        f, suffix = filter_keys(model)[key]
        if f.is_relation:
            parts.append(_relation_condition(st, f, suffix, alias, value))
        else:
            parts.append(_scalar_condition(st, f, suffix, column(alias, f), value))
    return _join(parts, "AND", "TRUE")


def _join(conditions: list[str], operator: str, empty: str) -> str:
    if not conditions:
        return empty
    if len(conditions) == 1:
        return conditions[0]
    return "(" + f" {operator} ".join(f"({c})" for c in conditions) + ")"


def _scalar_condition(st: Statement, f: ApiField, suffix: str, col: str, value: Any) -> str:
    convert = converter(f.type_name, f.name)
    if suffix in ("_in", "_not_in"):
        if value is None:
            return "TRUE"
        if not value:
            return "FALSE" if suffix == "_in" else "TRUE"
        items = [st.param(v, convert) for v in value]
        array = f"ARRAY[{', '.join(items)}]::{array_type(f)}"
        return f"{col} = ANY({array})" if suffix == "_in" else f"{col} <> ALL({array})"
    if value is None:
        if suffix == "":
            return f"{col} IS NULL"
        if suffix == "_not":
            return f"{col} IS NOT NULL"
        return "TRUE"
    p = st.param(value, convert)
    if f.type_name == "DateTime":
        p = f"{p}::timestamp(3)"
    if suffix == "":
        return f"{col} = {p}"
    if suffix == "_not":
        return f"{col} <> {p}"
    if suffix in COMPARISONS:
        return f"{col} {COMPARISONS[suffix]} {p}"
    text = f"{col}::text" if f.type_name == "UUID" else col
    negate = suffix.startswith("_not_")
    kind = suffix.removeprefix("_not")
    if kind == "_contains":
        condition = f"strpos({text}, {p}) > 0"
    elif kind == "_starts_with":
        condition = f"starts_with({text}, {p})"
    else:
        condition = f"right({text}, char_length({p})) = {st.param(value)}"
    return f"NOT ({condition})" if negate else condition


def _relation_condition(st: Statement, f: ApiField, suffix: str, alias: str, value: Any) -> str:
    target = f.target
    child = st.alias()
    link = related_condition(st, f, alias, child)
    rows = f"SELECT 1 FROM {st.table(target)} {child} WHERE {link}"  # noqa: S608 - quoted names
    if suffix == "":
        if value is None:
            return f"NOT EXISTS ({rows})"
        return f"EXISTS ({rows} AND {where_condition(st, target, child, value)})"
    if value is None:
        raise to_many_null_filter(f.name)
    nested = where_condition(st, target, child, value)
    if suffix == "_some":
        return f"EXISTS ({rows} AND {nested})"
    if suffix == "_none":
        return f"NOT EXISTS ({rows} AND {nested})"
    return f"NOT EXISTS ({rows} AND NOT ({nested}))"


def unique_condition(
    st: Statement, model: ApiModel, alias: str, field: ApiField, value: Any
) -> str:
    p = st.param(value, converter(field.type_name, field.name))
    return f"{alias}.{ident(field.column)} = {p}"
