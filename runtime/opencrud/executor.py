"""The entry point of a service's data API: one request body in, status and JSON body out.

Parsing, validation and compilation are cached (documents by text; compiled SQL by document,
operation and the shape of the variables), queries run as one statement per root field whose
result is already the JSON text of the answer, and mutations run in one transaction per request
with a savepoint per root field, so a failed mutation leaves its siblings' work in place.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from threading import Lock
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    execute_sync,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values
from psycopg import Connection

from runtime.datamodel.schema import Schema
from runtime.errors import PrismaError
from runtime.opencrud.depth import MAX_DEPTH, selection_depth
from runtime.opencrud.model import ApiSchema, api_schema
from runtime.opencrud.roots import CompiledField, compile_query_field
from runtime.opencrud.sdl import opencrud_sdl
from runtime.opencrud.values import shape

log = logging.getLogger("runtime")

MAX_QUERY_TOKENS = 20_000
CACHE_SIZE = 512
INTERNAL_ERROR = (
    "Whoops. Looks like an internal server error. Search your server logs for request ID: {}"
)


@dataclass
class Answer:
    """An HTTP answer: the status and the JSON body, already serialised."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Lru(OrderedDict):
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

    def get_or(self, key: Any, make: Any) -> Any:
        with self.lock:
            if key in self:
                self.move_to_end(key)
                return self[key]
        value = make()
        with self.lock:
            self[key] = value
            if len(self) > self.size:
                self.popitem(last=False)
        return value


@dataclass
class ServiceApi:
    """The generated API of one deployed schema, shared by every request to it."""

    api: ApiSchema
    graphql_schema: GraphQLSchema
    sdl: str
    documents: _Lru = field(default_factory=lambda: _Lru(CACHE_SIZE))
    compiled: _Lru = field(default_factory=lambda: _Lru(CACHE_SIZE))


@lru_cache(maxsize=64)
def service_api(schema_json: str) -> ServiceApi:
    """The API for a stored schema (`management."Migration".schema`), built once per schema."""
    api = api_schema(Schema.from_json(schema_json))
    sdl = opencrud_sdl(api)
    return ServiceApi(api, build_schema(sdl), sdl)


def execute(
    service: ServiceApi, schema_name: str, payload: Any, conn: Connection, request_id: str
) -> Answer:
    """Answer a request body: one operation, or a JSON array of them answered with an array."""
    if isinstance(payload, list):
        answers = [_one(service, schema_name, item, conn, request_id) for item in payload]
        return Answer(200, b"[" + b",".join(body for _, body in answers) + b"]")
    status, body = _one(service, schema_name, payload, conn, request_id)
    return Answer(status, body)


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(message: str, request_id: str, code: int | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if code is not None:
        error["code"] = code
    error["requestId"] = request_id
    return error


@dataclass
class _Document:
    document: DocumentNode | None = None
    errors: list[dict[str, Any]] | None = None
    syntax_error: str | None = None


def _load(service: ServiceApi, text: str) -> _Document:
    def make() -> _Document:
        try:
            document = parse(text, max_tokens=MAX_QUERY_TOKENS)
        except GraphQLSyntaxError as exc:
            return _Document(syntax_error=exc.message)
        problems = validate(service.graphql_schema, document)
        if problems:
            return _Document(errors=[_graphql_error(e) for e in problems])
        depth = selection_depth(document)
        if depth > MAX_DEPTH:
            message = (
                f"The query is nested {depth} levels deep; this server accepts at most "
                f"{MAX_DEPTH} levels."
            )
            return _Document(errors=[{"message": message}])
        return _Document(document=document)

    return service.documents.get_or(text, make)


def _graphql_error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [{"line": x.line, "column": x.column} for x in error.locations]
    return formatted


def _one(
    service: ServiceApi, schema_name: str, payload: Any, conn: Connection, request_id: str
) -> tuple[int, bytes]:
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return 200, _dump(
            {"errors": [_error("The request needs a GraphQL `query` string.", request_id, 1001)]}
        )
    loaded = _load(service, payload["query"])
    if loaded.syntax_error is not None:
        # Prisma answers unparseable GraphQL text from its top-level handler: HTTP 500.
        return 500, _dump({"errors": [{"message": loaded.syntax_error, "requestId": request_id}]})
    if loaded.errors is not None:
        return 200, _dump({"data": None, "errors": loaded.errors})
    assert loaded.document is not None
    operation_name = payload.get("operationName")
    operation = get_operation_ast(loaded.document, operation_name)
    if operation is None:
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else ("Must provide operation name if query contains multiple operations.")
        )
        return 200, _dump({"data": None, "errors": [{"message": message}]})
    raw_variables = payload.get("variables") or {}
    if isinstance(raw_variables, str):
        try:
            raw_variables = json.loads(raw_variables or "{}")
        except ValueError:
            message = f"Variables could not be parsed as json: {raw_variables}"
            return 200, _dump({"errors": [_error(message, request_id, 3024)]})
    if not isinstance(raw_variables, dict):
        return 200, _dump(
            {"errors": [_error("Variables must be a JSON object.", request_id, 3024)]}
        )
    values = get_variable_values(
        service.graphql_schema, operation.variable_definitions or (), raw_variables
    )
    if isinstance(values, list):
        return 200, _dump({"data": None, "errors": [_graphql_error(e) for e in values]})
    coerced: dict[str, Any] = values.coerced
    fragments = {
        d.name.value: d
        for d in loaded.document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    if operation.operation == OperationType.QUERY:
        return 200, _run_query(
            service, schema_name, payload["query"], operation, fragments, coerced, conn, request_id
        )
    if operation.operation == OperationType.MUTATION:
        from runtime.opencrud.mutations import run_mutation

        return 200, run_mutation(
            service, schema_name, operation, fragments, coerced, conn, request_id
        )
    message = "Subscriptions are served over websockets, which this runtime does not offer yet."
    return 200, _dump({"data": None, "errors": [{"message": message}]})


def _variable_shape(
    service: ServiceApi, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> Any:
    from graphql import type_from_ast

    parts = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        t = type_from_ast(service.graphql_schema, definition.type)
        parts.append((name, name in variables, shape(variables.get(name), t)))  # type: ignore[arg-type]
    return tuple(parts)


def _run_query(
    service: ServiceApi,
    schema_name: str,
    text: str,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    conn: Connection,
    request_id: str,
) -> bytes:
    key = (
        text,
        operation.name.value if operation.name else None,
        _variable_shape(service, operation, variables),
    )
    compiled = (
        service.compiled.compiled_get(key) if hasattr(service.compiled, "compiled_get") else None
    )
    fields: list[CompiledField] | None = compiled
    if fields is None:
        fields = compile_operation(service, schema_name, operation, fragments, variables)
        if all(f.error is None for f in fields):
            service.compiled.get_or(key, lambda: fields)
    return run_compiled(service, fields, operation, text, variables, conn, request_id, "Query")


def compile_operation(
    service: ServiceApi,
    schema_name: str,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> list[CompiledField]:
    """One compiled statement (or a compile-time error) per root field of a query."""
    from runtime.opencrud.reads import ReadCompiler
    from runtime.opencrud.statement import Statement

    probe = ReadCompiler(
        service.api, service.graphql_schema, fragments, variables, Statement(schema_name)
    )
    roots = probe.collect([operation.selection_set], "Query")
    return [
        compile_query_field(
            service.api, service.graphql_schema, schema_name, fragments, variables, key, nodes
        )
        for key, nodes in roots.items()
    ]


def run_compiled(
    service: ServiceApi,
    fields: list[CompiledField],
    operation: OperationDefinitionNode,
    text: str,
    variables: dict[str, Any],
    conn: Connection,
    request_id: str,
    root_type: str,
) -> bytes:
    """Run compiled root fields and splice their JSON texts into the answer."""
    parts: list[bytes] = []
    errors: list[dict[str, Any]] = []
    introspection: dict[str, Any] | None = None
    null_data = False
    for f in fields:
        key = json.dumps(f.key).encode()
        if f.kind == "typename":
            parts.append(key + b":" + _dump(root_type))
            continue
        if f.kind == "introspection":
            if introspection is None:
                introspection = _introspect(service, text, operation, variables)
            parts.append(key + b":" + _dump(introspection.get(f.key)))
            continue
        try:
            if f.error is not None:
                raise f.error
            assert f.statement is not None
            row = conn.execute(f.sql, f.statement.bind(variables)).fetchone()  # type: ignore[arg-type]
            value = row[0] if row else None
            parts.append(key + b":" + (value.encode() if value is not None else b"null"))
        except PrismaError as exc:
            errors.append(field_error(exc, f.key, f.nodes, request_id))
            parts.append(key + b":null")
            null_data = null_data or f.non_null
    data = b"null" if null_data else b"{" + b",".join(parts) + b"}"
    if errors:
        return b'{"data":' + data + b',"errors":' + _dump(errors) + b"}"
    return b'{"data":' + data + b"}"


def field_error(
    exc: PrismaError, key: str, nodes: list[FieldNode], request_id: str
) -> dict[str, Any]:
    error: dict[str, Any] = {"message": exc.message, "path": [key]}
    if nodes and nodes[0].loc is not None:
        from graphql import get_location

        location = get_location(nodes[0].loc.source, nodes[0].loc.start)
        error["locations"] = [{"line": location.line, "column": location.column}]
    error["code"] = exc.code
    error["requestId"] = request_id
    return error


def _introspect(
    service: ServiceApi, text: str, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> dict[str, Any]:
    """Introspection fields through graphql-core; data fields are left to the compiler."""
    document = parse(text)
    result = execute_sync(
        service.graphql_schema,
        document,
        variable_values=variables,
        operation_name=operation.name.value if operation.name else None,
        field_resolver=lambda *_args, **_kw: None,
    )
    return result.data or {}
