"""Compare two printed GraphQL schemas type by type and field by field, ignoring order."""

from __future__ import annotations

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
)


def _shape(schema: GraphQLSchema) -> dict[str, object]:
    shape: dict[str, object] = {}
    for name, t in schema.type_map.items():
        if name.startswith("__"):
            continue
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            shape[name] = {
                f: (str(d.type), {a: str(arg.type) for a, arg in d.args.items()})
                for f, d in t.fields.items()
            }
        elif isinstance(t, GraphQLInputObjectType):
            shape[name] = {f: str(d.type) for f, d in t.fields.items()}
        elif isinstance(t, GraphQLEnumType):
            shape[name] = sorted(t.values)
        else:
            shape[name] = "scalar"
    return shape


def schema_differences(ours: str, theirs: str) -> list[str]:
    """Human-readable differences; empty when both schemas declare the same API."""
    a, b = _shape(build_schema(ours)), _shape(build_schema(theirs))
    problems = []
    for name in sorted(set(a) | set(b)):
        if name not in a:
            problems.append(f"missing type {name}")
        elif name not in b:
            problems.append(f"extra type {name}")
        elif a[name] != b[name]:
            mine, other = a[name], b[name]
            if isinstance(mine, dict) and isinstance(other, dict):
                for f in sorted(set(mine) | set(other)):
                    if mine.get(f) != other.get(f):
                        problems.append(f"{name}.{f}: ours {mine.get(f)} theirs {other.get(f)}")
            else:
                problems.append(f"{name}: ours {mine} theirs {other}")
    return problems
