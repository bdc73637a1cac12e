"""The generated API of one deployed schema, built once and shared by its requests.

Holds the GraphQL schema (with Prisma's scalar rules: `DateTime` literals must be dates, `Json`
accepts a JSON string or JSON itself, `Long` is an integer) and the two caches: parsed and
validated documents by text, compiled SQL by document, operation and variable shape. Nothing in
it belongs to one service: every service deployed with the same datamodel shares it (compiled
statements name the placeholder schema, bound per request; see `runtime.names`). The service
directory (`runtime.directory`) owns the APIs and decides how many to keep.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    print_schema,
    value_from_ast_untyped,
)

from runtime.datamodel.schema import Schema
from runtime.lru import Lru
from runtime.opencrud.model import ApiSchema, api_schema
from runtime.opencrud.sdl.generator import lazy_types
from runtime.opencrud.sdl.objects import graphql_schema

CACHE_SIZE = 512
_DATE = re.compile(
    r"^\d{4}(-\d\d(-\d\d([T ]\d\d(:\d\d(:\d\d(\.\d{1,9})?)?)?)?)?)?(Z|[+-]\d\d:?\d\d)?$"
)


@dataclass(eq=False)
class ServiceApi:
    api: ApiSchema
    graphql_schema: GraphQLSchema
    version: str  # a digest of the deployed schema: statements of another datamodel differ
    documents: Lru[Any] = field(default_factory=lambda: Lru(CACHE_SIZE))
    compiled: Lru[Any] = field(default_factory=lambda: Lru(CACHE_SIZE))
    # Hashes of texts answered through their hoisted document, and whether each was loaded as
    # itself since (`executor._load_as_itself`): a text sent again is loaded once; a text sent
    # once never takes a document's room.
    hoisted_seen: Lru[bool] = field(default_factory=lambda: Lru(CACHE_SIZE))
    # The root mutation fields by name, with their kind and model (`mutations.root_mutations`).
    mutation_roots: dict[str, Any] | None = None

    @property
    def sdl(self) -> str:
        """The printed schema (not kept: it is a third of a megabyte for 30 types)."""
        return print_schema(self.graphql_schema)


def service_api(schema_json: str) -> ServiceApi:
    """The API for a stored schema (`management."Migration".schema`).

    The GraphQL schema is built from the generator's types directly, with fields built when
    first read (`runtime.opencrud.sdl.objects`): the first request to a new datamodel pays for
    the types it touches, not for printing, parsing and validating all of them."""
    with _collector_paused():
        api = api_schema(Schema.from_json(schema_json))
        schema = graphql_schema(lazy_types(api), PRISMA_LITERALS)
    return ServiceApi(api, schema, schema_version(schema_json))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while an API is built.

    A 30-type datamodel's build allocates tens of thousands of objects that live as long as
    the API: the collections they trigger scan them (and in a process holding many APIs, older
    generations too) for nothing, a quarter of the build's time. Reference counting still frees
    what the build drops; the collector resumes after it (other threads lose nothing but a few
    milliseconds of collections). Left alone when something else has paused it."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def schema_version(schema_json: str) -> str:
    """A short digest of a deployed schema: equal for equal datamodels."""
    return hashlib.sha256(schema_json.encode()).hexdigest()[:16]


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


# How literals of Prisma's scalars are read (variables' values pass as given, as upstream).
PRISMA_LITERALS = {
    "DateTime": _date_literal,
    "Json": _json_literal,
    "Long": _long_literal,
    "UUID": _uuid_literal,
}
