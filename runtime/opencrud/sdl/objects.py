"""The generated types as a graphql-core schema, built directly and lazily.

The schema used to be printed as SDL and parsed back with `build_schema`: for a 30-type
datamodel that is ~950 types and 330 kB of text, and parsing, building and validating it cost
the first request to a new datamodel over a second of CPU. Here every type becomes a
graphql-core object at once (a name and a thunk), while the fields of a type are built only when
something reads them: a request touches a few dozen of the hundreds of input types, introspection
reads them all. The result prints and introspects exactly as the SDL-built schema did (tests
compare both, type order included).

The schema is marked valid (`assume_valid`): it comes from our generator, whose output the schema
tests check with graphql-core's full schema validation, and validating it on the first request
would force every field of every type anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import graphql.type.definition
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLEnumValue,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLType,
    specified_scalar_types,
)
from graphql.type.schema import InterfaceImplementations

from runtime.opencrud.sdl.registry import TypeDef

_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_check_name = graphql.type.definition.assert_name
_check_enum_value_name = graphql.type.definition.assert_enum_value_name


def _assert_name(name: str) -> str:
    """graphql-core's `assert_name`, with the common case (a valid name) in one regular
    expression: graphql-core checks every name character by character in Python, a third of
    the time a 30-type datamodel's types took to build. Anything else goes to graphql-core's own
    check, for its exact error."""
    if type(name) is str and _NAME.fullmatch(name):
        return name
    return _check_name(name)


def _assert_enum_value_name(name: str) -> str:
    if type(name) is str and _NAME.fullmatch(name) and name not in ("true", "false", "null"):
        return name
    return _check_enum_value_name(name)


# Every graphql-core type built in this process checks its names through these.
graphql.type.definition.assert_name = _assert_name  # type: ignore[attr-defined]
graphql.type.definition.assert_enum_value_name = _assert_enum_value_name  # type: ignore[attr-defined]

# Prisma's scalars: how a literal of each is read (`runtime.opencrud.service` supplies them).
LiteralParsers = dict[str, Callable[..., Any]]


class _Types:
    """Named types by name, and the wrapped types a field's type string names (shared)."""

    def __init__(self, named: dict[str, GraphQLNamedType]) -> None:
        self.named = named
        self.wrapped: dict[str, GraphQLType] = {}

    def of(self, text: str) -> Any:
        """`[Post!]!` and the like: the only shapes the generator writes."""
        found = self.wrapped.get(text)
        if found is None:
            if text.endswith("!"):
                found = GraphQLNonNull(self.of(text[:-1]))
            elif text.startswith("["):
                found = GraphQLList(self.of(text[1:-1]))
            else:
                found = self.named[text]
            self.wrapped[text] = found
        return found


def graphql_schema(types: dict[str, TypeDef], literals: LiteralParsers) -> GraphQLSchema:
    """The schema of the generator's `types` (see `opencrud_types`), fields built on demand."""
    named: dict[str, GraphQLNamedType] = {}
    lookup = _Types(named)
    for name in sorted(types):
        named[name] = _named_type(types[name], lookup, literals)
    for name, scalar in specified_scalar_types.items():
        named.setdefault(name, scalar)

    # The plain constructor collects the introspection types and the directives' argument types
    # (without touching our types, whose fields would all be built by its walk).
    schema = GraphQLSchema(assume_valid=True)
    built_in = schema.type_map
    schema.query_type = named.get("Query")  # type: ignore[assignment]
    schema.mutation_type = named.get("Mutation")  # type: ignore[assignment]
    schema.subscription_type = named.get("Subscription")  # type: ignore[assignment]
    schema.type_map = _type_map(types, named, built_in)
    node = [named[n] for n in sorted(types) if "Node" in types[n].interfaces]
    if node:
        # What the constructor's walk would have filled in.
        schema._implementations_map = {
            "Node": InterfaceImplementations(objects=node, interfaces=[])  # type: ignore[arg-type]
        }
    return schema


def _type_map(
    types: dict[str, TypeDef],
    named: dict[str, GraphQLNamedType],
    built_in: dict[str, GraphQLNamedType],
) -> dict[str, GraphQLNamedType]:
    """The type map in the order `build_schema` gives it (introspection lists types in it): the
    printed types by name, each followed by the standard scalars it is first to name, then the
    introspection types."""
    order: dict[str, GraphQLNamedType] = {}
    standard = dict(specified_scalar_types)
    for name in sorted(types):
        order[name] = named[name]
        if not standard:
            continue
        for f in types[name].fields.values():
            for text in (f.type, *f.args.values()):
                scalar = standard.pop(text.strip("[]!"), None)
                if scalar is not None:
                    order[scalar.name] = scalar
    for name, named_type in built_in.items():
        order.setdefault(name, named_type)
    return order


def _named_type(type_def: TypeDef, types: _Types, literals: LiteralParsers) -> GraphQLNamedType:
    name = type_def.name
    if type_def.kind == "scalar":
        scalar = GraphQLScalarType(name)
        if name in literals:  # only literals: values of variables pass as given, as upstream
            scalar.parse_literal = literals[name]  # type: ignore[method-assign]
        return scalar
    if type_def.kind == "enum":
        return GraphQLEnumType(name, {v: GraphQLEnumValue(v) for v in type_def.values})
    if type_def.kind == "input":
        return GraphQLInputObjectType(name, lambda: _input_fields(type_def, types))
    interfaces = type_def.interfaces
    if type_def.kind == "interface":
        return GraphQLInterfaceType(name, lambda: _fields(type_def, types))
    return GraphQLObjectType(
        name,
        lambda: _fields(type_def, types),
        (lambda: [types.named[i] for i in interfaces]) if interfaces else None,  # type: ignore[arg-type,misc]
    )


def _fields(type_def: TypeDef, types: _Types) -> dict[str, GraphQLField]:
    of = types.of
    return {
        name: GraphQLField(
            of(f.type),
            {arg: GraphQLArgument(of(t)) for arg, t in f.args.items()} if f.args else None,
        )
        for name, f in type_def.fields.items()
    }


def _input_fields(type_def: TypeDef, types: _Types) -> dict[str, GraphQLInputField]:
    of = types.of
    return {name: GraphQLInputField(of(f.type)) for name, f in type_def.fields.items()}
