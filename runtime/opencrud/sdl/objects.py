"""The generated types as a graphql-core schema, built directly and lazily.

The schema used to be printed as SDL and parsed back with `build_schema`: for a 30-type
datamodel that is ~950 types and 330 kB of text, and parsing, building and validating it cost
the first request to a new datamodel over a second of CPU. Here a type becomes a graphql-core
object (a name and a thunk) when something first names it, and its fields are built (by the
generator too, see `Registry`) only when something reads them: a request touches a few dozen of
the hundreds of input types; introspection and printing read them all (`_TypeMap`). The result
prints and introspects exactly as the SDL-built schema did (tests compare both, type order
included).

The schema is marked valid (`assume_valid`): it comes from our generator, whose output the schema
tests check with graphql-core's full schema validation, and validating it on the first request
would force every field of every type anyway.
"""

from __future__ import annotations

import re
import threading
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

from runtime.opencrud.sdl.registry import Registry, TypeDef

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


_STANDARD = frozenset(specified_scalar_types)


class _Types:
    """The generator's types as graphql-core types, each made when first named (under `lock`:
    worker threads and the event loop share an API), and the wrapped types a field's type
    string names (shared). `standard` holds the standard scalars the schema is known to name
    so far (a standard scalar no type names is not in the schema)."""

    def __init__(self, source: Registry, literals: LiteralParsers) -> None:
        self.source = source
        self.literals = literals
        self.named: dict[str, GraphQLNamedType] = {}
        self.wrapped: dict[str, GraphQLType] = {}
        self.standard: set[str] = set()
        self.roots_noted = False
        self.lock = threading.RLock()

    def get(self, name: str) -> GraphQLNamedType | None:
        """The named type, made now if the generator has registered it."""
        found = self.named.get(name)
        if found is None:
            if name in _STANDARD:
                if name not in self.standard:
                    self._note_roots()
                return specified_scalar_types[name] if name in self.standard else None
            type_def = self.source.types.get(name)
            if type_def is None:
                return None
            with self.lock:
                found = self.named.get(name)
                if found is None:
                    found = self.named[name] = _named_type(type_def, self, self.literals)
        return found

    def of(self, text: str) -> Any:
        """`[Post!]!` and the like: the only shapes the generator writes."""
        found = self.wrapped.get(text)
        if found is None:
            if text.endswith("!"):
                found = GraphQLNonNull(self.of(text[:-1]))
            elif text.startswith("["):
                found = GraphQLList(self.of(text[1:-1]))
            else:
                if text in _STANDARD:
                    self.standard.add(text)
                found = self.get(text)
                assert found is not None, text
            self.wrapped[text] = found
        return found

    def _note_roots(self) -> None:
        """Count the standard scalars the root types name (`first: Int`, `id: ID!`...) as in
        the schema: a document's variables name them before its fields are read."""
        if self.roots_noted:
            return
        with self.lock:
            self.roots_noted = True
            for root in ("Query", "Mutation", "Subscription"):
                type_def = self.source.types.get(root)
                for f in type_def.fields.values() if type_def is not None else ():
                    for text in (f.type, *f.args.values()):
                        base = text.strip("[]!")
                        if base in _STANDARD:
                            self.standard.add(base)


def _whole(read: Callable[..., Any]) -> Callable[..., Any]:
    """`read` (a dict method) on a complete `_TypeMap`."""

    def on_complete(self: _TypeMap) -> Any:
        self.complete()
        return read(self)

    return on_complete


class _TypeMap(dict):  # type: ignore[type-arg]
    """The schema's `type_map`, filled as types are named. A lookup of a name not made yet
    makes it if the generator has registered it; a name it has not registered (yet) completes
    the schema first, so the answer is final either way. Reading the map whole
    (introspection, printing) completes it first, in the order `build_schema` gives."""

    def __init__(self, types: _Types, built_in: dict[str, GraphQLNamedType]) -> None:
        super().__init__(built_in)
        self._types = types
        self._built_in = built_in
        self._complete = False

    def get(self, name: Any, default: Any = None) -> Any:
        found = dict.get(self, name)
        if found is None and isinstance(name, str):
            found = self._find(name)
        return default if found is None else found

    def __getitem__(self, name: Any) -> Any:
        found = self.get(name)
        if found is None:
            raise KeyError(name)
        return found

    def __contains__(self, name: object) -> bool:
        return self.get(name) is not None

    def _find(self, name: str) -> GraphQLNamedType | None:
        if self._complete:
            return None
        found = self._types.get(name)
        if found is None:
            self.complete()
            return dict.get(self, name)
        dict.__setitem__(self, name, found)
        return found

    def complete(self) -> None:
        types = self._types
        with types.lock:
            if self._complete:
                return
            types.source.complete()
            order = _type_map(types, self._built_in)
            dict.clear(self)
            dict.update(self, order)
            self._complete = True

    # Reading the map whole completes it first.
    __iter__ = _whole(dict.__iter__)
    __len__ = _whole(dict.__len__)
    keys = _whole(dict.keys)
    values = _whole(dict.values)
    items = _whole(dict.items)


def graphql_schema(source: Registry, literals: LiteralParsers) -> GraphQLSchema:
    """The schema of the generator `source` (see `lazy_types`): types made when first named,
    their fields built when first read, and the generator's own types built as they are."""
    types = _Types(source, literals)
    registered = source.types

    # The plain constructor collects the introspection types and the directives' argument types
    # (without touching our types, whose fields would all be built by its walk).
    schema = GraphQLSchema(assume_valid=True)
    built_in = schema.type_map
    types.standard.update(name for name in built_in if name in _STANDARD)
    schema.query_type = types.get("Query")  # type: ignore[assignment]
    schema.mutation_type = types.get("Mutation")  # type: ignore[assignment]
    schema.subscription_type = types.get("Subscription")  # type: ignore[assignment]
    schema.type_map = _TypeMap(types, built_in)
    # Every model type is registered with the root types (`Generator.generate`): the
    # interface's implementations are known now (what the constructor's walk would have filled in).
    node = [types.get(n) for n in sorted(registered) if "Node" in registered[n].interfaces]
    if node:
        schema._implementations_map = {
            "Node": InterfaceImplementations(objects=node, interfaces=[])  # type: ignore[arg-type]
        }
    return schema


def _type_map(types: _Types, built_in: dict[str, GraphQLNamedType]) -> dict[str, GraphQLNamedType]:
    """The type map in the order `build_schema` gives it (introspection lists types in it): the
    printed types by name, each followed by the standard scalars it is first to name, then the
    introspection types."""
    order: dict[str, GraphQLNamedType] = {}
    standard = dict(specified_scalar_types)
    registered = types.source.types
    for name in sorted(registered):
        found = types.get(name)
        assert found is not None
        order[name] = found
        if not standard:
            continue
        for f in registered[name].fields.values():
            for text in (f.type, *f.args.values()):
                scalar = standard.pop(text.strip("[]!"), None)
                if scalar is not None:
                    types.standard.add(scalar.name)
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
        (lambda: [types.get(i) for i in interfaces]) if interfaces else None,  # type: ignore[arg-type,misc]
    )


def _fields(type_def: TypeDef, types: _Types) -> dict[str, GraphQLField]:
    of = types.of
    with types.lock:
        return {
            name: GraphQLField(
                of(f.type),
                {arg: GraphQLArgument(of(t)) for arg, t in f.args.items()} if f.args else None,
            )
            for name, f in type_def.fields.items()
        }


def _input_fields(type_def: TypeDef, types: _Types) -> dict[str, GraphQLInputField]:
    of = types.of
    with types.lock:
        return {name: GraphQLInputField(of(f.type)) for name, f in type_def.fields.items()}
