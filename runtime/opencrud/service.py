"""The generated API of one deployed schema, built once and shared by its requests.

Holds the GraphQL schema (with Prisma's scalar rules: `DateTime` literals must be dates, `Json`
accepts a JSON string or JSON itself, `Long` is an integer) and the two caches: parsed and
validated documents by text, compiled SQL by document, operation and variable shape.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from threading import Lock
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    build_schema,
    value_from_ast_untyped,
)

from runtime.datamodel.schema import Schema
from runtime.opencrud.model import ApiSchema, api_schema
from runtime.opencrud.sdl import opencrud_sdl

CACHE_SIZE = 512
_DATE = re.compile(
    r"^\d{4}(-\d\d(-\d\d([T ]\d\d(:\d\d(:\d\d(\.\d{1,9})?)?)?)?)?)?(Z|[+-]\d\d:?\d\d)?$"
)


class Lru(OrderedDict):
    """A small thread-safe LRU map (requests run in worker threads)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = Lock()

    def lookup(self, key: Any) -> Any:
        with self.lock:
            value = super().get(key)
            if value is not None:
                self.move_to_end(key)
            return value

    def remember(self, key: Any, value: Any) -> Any:
        with self.lock:
            self[key] = value
            if len(self) > self.size:
                self.popitem(last=False)
        return value


@dataclass
class ServiceApi:
    api: ApiSchema
    graphql_schema: GraphQLSchema
    sdl: str
    documents: Lru = field(default_factory=lambda: Lru(CACHE_SIZE))
    compiled: Lru = field(default_factory=lambda: Lru(CACHE_SIZE))


@lru_cache(maxsize=64)
def service_api(schema_json: str) -> ServiceApi:
    """The API for a stored schema (`management."Migration".schema`), built once per schema."""
    api = api_schema(Schema.from_json(schema_json))
    sdl = opencrud_sdl(api)
    graphql_schema = build_schema(sdl)
    _prisma_scalars(graphql_schema)
    return ServiceApi(api, graphql_schema, sdl)


def _prisma_scalars(schema: GraphQLSchema) -> None:
    for name, parse_literal in (
        ("DateTime", _date_literal),
        ("Json", _json_literal),
        ("Long", _long_literal),
        ("UUID", _uuid_literal),
    ):
        scalar = schema.type_map.get(name)
        if isinstance(scalar, GraphQLScalarType):
            scalar.parse_literal = parse_literal  # type: ignore[method-assign]


def _date_literal(node: ValueNode, _variables: Any = None) -> Any:
    if isinstance(node, StringValueNode) and _DATE.match(node.value.strip()):
        return node.value
    raise GraphQLError("Date value expected")


def _json_literal(node: ValueNode, variables: Any = None) -> Any:
    if isinstance(node, StringValueNode | ObjectValueNode | ListValueNode):
        return value_from_ast_untyped(node, variables)
    raise GraphQLError("Not valid JSON")


def _long_literal(node: ValueNode, _variables: Any = None) -> Any:
    if isinstance(node, IntValueNode):
        return int(node.value)
    raise GraphQLError("Long value expected")


_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


def _uuid_literal(node: ValueNode, _variables: Any = None) -> Any:
    if isinstance(node, StringValueNode) and _UUID.match(node.value):
        return node.value
    raise GraphQLError("UUID value expected")
