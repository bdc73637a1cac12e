"""The entry point of a service's data API: one request body in, HTTP status and JSON body out.

Queries run as one statement per root field whose result is already the JSON text of that
field, and the answer is spliced together from those texts: Python never touches a row.
Mutations run in one transaction per request with a savepoint per root field. A request is
planned first (parsed, validated, compiled; cached by document) into steps (`steps`) that any
driver runs: a worker thread's connection or the event loop's. Statuses follow
Prisma (reference 0): everything is HTTP 200, except GraphQL text that does not parse (500).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLString,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute_sync,
    get_operation_ast,
    parse,
    type_from_ast,
    validate,
)
from graphql.execution.values import get_variable_values
from psycopg import Connection
from psycopg import errors as pg_errors

from runtime.envelope import dump, error_body, graphql_error
from runtime.errors import PrismaError
from runtime.names import schema_sql
from runtime.opencrud.depth import MAX_DEPTH, selection_depth
from runtime.opencrud.errors import error_entry, invalid_input
from runtime.opencrud.hoist import Hoisted, Shape, declare, hoist, learn_shape, scan
from runtime.opencrud.limits import RequestLimits
from runtime.opencrud.mutations import run_mutation
from runtime.opencrud.reads import ReadCompiler
from runtime.opencrud.roots import CompiledField, compile_query_field
from runtime.opencrud.service import ServiceApi, service_api
from runtime.opencrud.statement import Statement
from runtime.opencrud.steps import OneStatement, Result, Sql, Steps, answered, drive
from runtime.opencrud.validation import validate_document
from runtime.opencrud.values import shape
from runtime.subscriptions.events import EventSink

__all__ = [
    "Answer",
    "ServiceApi",
    "execute",
    "mutation_fields",
    "plan",
    "root_fields",
    "service_api",
]

MAX_QUERY_TOKENS = 20_000


@dataclass
class Answer:
    """An HTTP answer: the status and the JSON body, already serialised."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def execute(
    service: ServiceApi,
    schema_name: str,
    payload: Any,
    conn: Connection,
    request_id: str,
    limits: RequestLimits | None = None,
    sink: EventSink | None = None,
) -> Answer:
    """Answer a request body on a synchronous connection: one operation, or a JSON array of
    them answered with an array.

    `schema_name` is the service's PostgreSQL schema, where its statements run; `conn` is a
    connection of the tenant's pool. The event loop uses `plan` and `steps.drive_async` instead.
    """
    steps = plan(service, payload, request_id, limits=limits, sink=sink)
    assert steps is not None
    return Answer(*drive(steps, conn, schema_sql(schema_name, service.version)))


@dataclass(frozen=True)
class RootFields:
    """An operation's root fields with its fragments expanded: how many response keys it
    selects (each one a statement) and the names of the fields."""

    count: int
    names: tuple[str, ...]


# A prepared query: its variables' coercions, its compiled fields, its root field count.
_Prepared = tuple[list[tuple[str, Callable[[Any], Any]]], list[CompiledField], int]


@dataclass
class _Document:
    document: DocumentNode | None = None
    errors: list[dict[str, Any]] | None = None
    syntax_error: str | None = None
    roots: dict[str | None, RootFields] | None = None  # by operation name
    # Per operation name: its variables' coercions when all are plain scalars, False
    # otherwise (see `_scalar_variables`).
    signatures: dict[str | None, Any] = field(default_factory=dict)
    # Per operation name as requests send it: a query whose variables (if any) are String, ID
    # or Float values, whose SQL their values do not change, once compiled without errors: its
    # variables' coercions, its fields and how many root fields it selects. A request for it
    # needs nothing looked up, validated or keyed again, only its variables coerced (`plan`).
    prepared: dict[str | None, _Prepared] = field(default_factory=dict)


def root_fields(document: DocumentNode) -> dict[str | None, RootFields]:
    """Each operation's root fields, counted after fragments are expanded, so `{ ...F }` with
    a fragment of a thousand aliases counts a thousand. Each fragment is expanded once per
    operation (spreading it again selects the same keys), so this is linear in the document
    whatever its fragments spread."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    roots: dict[str | None, RootFields] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        fields: list[FieldNode] = []
        pending = [definition.selection_set]
        expanded: set[str] = set()
        while pending:
            for node in pending.pop().selections:
                if isinstance(node, FieldNode):
                    fields.append(node)
                elif isinstance(node, InlineFragmentNode):
                    pending.append(node.selection_set)
                elif isinstance(node, FragmentSpreadNode):
                    name = node.name.value
                    if name in fragments and name not in expanded:
                        expanded.add(name)
                        pending.append(fragments[name].selection_set)
        keys = {(f.alias or f.name).value for f in fields if f.name.value != "__typename"}
        name = definition.name.value if definition.name else None
        roots[name] = RootFields(len(keys), tuple(f.name.value for f in fields))
    return roots


def _load(service: ServiceApi, text: str) -> _Document:
    """Parse, validate and measure a document once per text."""
    cached = service.documents.lookup(text)
    if cached is not None:
        return cached
    too_deep = (
        f"The query is nested more than {MAX_DEPTH} levels deep; this server accepts at "
        f"most {MAX_DEPTH} levels of selections."
    )
    try:
        document = parse(text, max_tokens=MAX_QUERY_TOKENS)
    except GraphQLSyntaxError as exc:
        if "nested too deeply" in exc.message:  # the parser's own nesting limit
            return service.documents.remember(text, _Document(errors=[{"message": too_deep}]))
        return _Document(syntax_error=exc.message)
    if selection_depth(document) > MAX_DEPTH:
        loaded = _Document(errors=[{"message": too_deep}])
    else:
        problems = validate_document(service.graphql_schema, document)
        loaded = _Document(errors=[graphql_error(e) for e in problems] or None)
        if not problems:
            loaded.document = document
            loaded.roots = root_fields(document)
    return service.documents.remember(text, loaded)


def _resolve(
    service: ServiceApi,
    text: str,
    *,
    cached_only: bool = False,
    hoisting: bool = True,
    counting: bool = True,
) -> tuple[_Document | None, Hoisted | None]:
    """The loaded document for a request's text, hoisted when its shape is known (see
    `runtime.opencrud.hoist`): a text seen before is found as it is; a text whose literals are
    the only difference from one seen before is answered by their shape's hoisted document.
    A text hoisted once and sent again is loaded as itself, once: a client repeating a text
    with inlined values then takes the road of a known text (`_prepared`), which costs a
    fraction of scanning and hoisting it every time.
    With `cached_only`, (None, None) when that would need parsing or validating. Without
    `counting` (a look at a request that is planned too), this is not a sending of the text."""
    loaded: _Document | None = service.documents.lookup(text)
    if loaded is not None:
        return loaded, None
    found = scan(text) if hoisting else None
    shape: Shape | None = None
    if found is not None:
        shape = service.documents.lookup(("shape", found.skeleton))
        hoisted = hoist(found, shape) if shape is not None else None
        if shape is not None and hoisted is not None:
            loaded = service.documents.lookup(("hoisted", hoisted.text))
            if loaded is None and not cached_only:
                loaded = _load_hoisted(service, hoisted, shape)
            if loaded is not None and loaded.document is not None:
                if not counting or not _load_as_itself(service, text, cached_only):
                    return loaded, hoisted
                if cached_only:
                    return None, None  # loading it as itself parses it: not on the loop
                return _load(service, text), None
    if cached_only:
        return None, None
    loaded = _load(service, text)
    if found is not None and shape is None and loaded.document is not None:
        learned = learn_shape(service.graphql_schema, loaded.document, found)
        service.documents.remember(("shape", found.skeleton), learned)
    return loaded, None


def _load_as_itself(service: ServiceApi, text: str, cached_only: bool) -> bool:
    """Whether a text answered through its hoisted document should now be loaded as itself:
    it was answered so before (known by its hash: a collision costs one parse) and has not been
    loaded since. One loaded and since dropped from the documents stays hoisted: a client
    cycling through more texts than they hold would otherwise have every request parsed."""
    key = hash(text)
    loaded_before = service.hoisted_seen.lookup(key)
    if loaded_before is None:
        service.hoisted_seen.remember(key, False)
        return False
    if loaded_before:
        return False
    if not cached_only:  # the event loop leaves the loading to a thread, which marks it
        service.hoisted_seen.remember(key, True)
    return True


def _load_hoisted(service: ServiceApi, hoisted: Hoisted, shape: Shape) -> _Document:
    """Parse and validate a hoisted document once per text. One that does not parse or validate
    (it should not: its shape came from a valid document) is remembered without a document, so
    its requests take the unhoisted path, which reports whatever is wrong in today's words."""
    try:
        # A variable is two tokens where its literal was one; the shape's first text passed
        # the limit with as many tokens as this one's.
        parsed = parse(hoisted.text, max_tokens=MAX_QUERY_TOKENS + len(hoisted.values))
    except GraphQLSyntaxError:
        return service.documents.remember(("hoisted", hoisted.text), _Document())
    document = declare(parsed, shape)
    loaded = _Document()
    if selection_depth(document) <= MAX_DEPTH and not validate(service.graphql_schema, document):
        loaded.document = document
        loaded.roots = root_fields(document)
    return service.documents.remember(("hoisted", hoisted.text), loaded)


def mutation_fields(service: ServiceApi, payload: Any) -> list[str]:
    """The root fields of the valid mutations in a request (a batch included); [] otherwise.

    Uses the same cached parse as `execute`, so a document is still parsed once. Fragments
    are expanded: `mutation { ...F }` writes as much as the fields of `F`.
    """
    roots: list[str] = []
    for item in payload if isinstance(payload, list) else [payload]:
        query = item.get("query") if isinstance(item, dict) else None
        if not isinstance(query, str):
            continue
        loaded = _resolve(service, query, counting=False)[0]
        document = loaded.document if loaded is not None else None
        operation = get_operation_ast(document, item.get("operationName")) if document else None
        if operation is not None and operation.operation == OperationType.MUTATION:
            assert loaded is not None and loaded.roots is not None
            roots += loaded.roots[operation.name.value if operation.name else None].names
    return roots


@dataclass
class _Request:
    """A request whose document is valid and whose variables are coerced."""

    text: str
    document: DocumentNode
    operation: OperationDefinitionNode
    operation_name: str | None
    variables: dict[str, Any]
    hoisted: Hoisted | None = None

    @property
    def key(self) -> Any:
        """The document's key in the caches: a hoisted one is tagged, so no client text
        can name it."""
        return ("hoisted", self.text) if self.hoisted is not None else self.text

    @property
    def fragments(self) -> dict[str, FragmentDefinitionNode]:
        return {
            d.name.value: d
            for d in self.document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }


def _request(
    service: ServiceApi,
    payload: Any,
    request_id: str,
    *,
    cached_only: bool = False,
    max_root_fields: int | None = None,
    hoisting: bool = True,
) -> _Request | tuple[int, bytes] | None:
    """The request's operation and variables, or the answer to a request that fails before
    running (an error). With `cached_only`, None for a document not parsed yet."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return 200, error_body(1001, "The request needs a GraphQL `query` string.", request_id)
    text = payload["query"]
    loaded, hoisted = _resolve(service, text, cached_only=cached_only, hoisting=hoisting)
    if loaded is None:
        return None
    if loaded.syntax_error is not None:
        # Prisma answers unparseable GraphQL text from its top-level handler: HTTP 500.
        return 500, dump({"errors": [{"message": loaded.syntax_error, "requestId": request_id}]})
    if loaded.document is None:
        return 200, dump({"data": None, "errors": loaded.errors})
    operation_name = payload.get("operationName") or None
    operation = get_operation_ast(loaded.document, operation_name)
    if operation is None:
        message = (
            f"Unknown operation named '{operation_name}'."
            if operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        return 200, dump({"data": None, "errors": [{"message": message}]})
    if max_root_fields is not None:
        assert loaded.roots is not None
        selected = loaded.roots[operation.name.value if operation.name else None].count
        if selected > max_root_fields:
            return 200, error_body(
                1001, _too_many_root_fields(selected, max_root_fields), request_id
            )
    raw = payload.get("variables")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return 200, error_body(
                3024, f"Variables could not be parsed as json: {raw}", request_id
            )
    if raw is not None and not isinstance(raw, dict):
        return 200, error_body(3024, f"Variables could not be parsed as json: {raw}", request_id)
    if hoisted is not None:
        raw = {**(raw or {}), **hoisted.values}
    coerced = _scalar_variables(service, loaded, operation, raw or {})
    values = (
        get_variable_values(service.graphql_schema, operation.variable_definitions or (), raw or {})
        if coerced is None
        else None
    )
    if isinstance(values, list):
        if hoisted is not None:  # the client's variables: reported against its own text
            return _request(
                service,
                payload,
                request_id,
                cached_only=cached_only,
                max_root_fields=max_root_fields,
                hoisting=False,
            )
        return 200, dump({"data": None, "errors": [graphql_error(e) for e in values]})
    if hoisted is not None:
        text = hoisted.text
    if coerced is None:
        assert values is not None
        coerced = values.coerced
    return _Request(text, loaded.document, operation, operation_name, coerced, hoisted)


# What graphql-core's coercion gives a variable of these scalar types, for the values it takes
# as they are; anything else (a default, a null, a list, an input object, a custom scalar, a
# value it converts or refuses) is left to graphql-core.
_SCALARS: dict[GraphQLScalarType, Callable[[Any], Any]] = {
    GraphQLString: lambda v: v if type(v) is str else _NOT_PLAIN,
    GraphQLID: lambda v: v if type(v) is str else str(v) if type(v) is int else _NOT_PLAIN,
    GraphQLInt: lambda v: v if type(v) is int and -(2**31) <= v < 2**31 else _NOT_PLAIN,
    GraphQLFloat: lambda v: (
        v
        if type(v) is float and math.isfinite(v)
        else float(v)
        if type(v) is int and -(2**53) <= v <= 2**53
        else _NOT_PLAIN
    ),
    GraphQLBoolean: lambda v: v if type(v) is bool else _NOT_PLAIN,
}
_NOT_PLAIN = object()
# The coercions of the scalars whose values the compiled SQL depends on (`values.shape`).
_SHAPED = (_SCALARS[GraphQLInt], _SCALARS[GraphQLBoolean])


def _scalar_variables(
    service: ServiceApi, loaded: _Document, operation: OperationDefinitionNode, raw: Any
) -> dict[str, Any] | None:
    """The coerced variables of an operation whose variables are all built-in scalars without
    defaults, each given a value of its own type: graphql-core's answer without its per-request
    signature building. None when any variable needs graphql-core (see `_SCALARS`)."""
    definitions = operation.variable_definitions
    if not definitions:
        return None
    # By name, unique within a valid document: an AST node hashes its whole subtree.
    name = operation.name.value if operation.name else None
    signatures = loaded.signatures.get(name)
    if signatures is None:
        signatures = loaded.signatures[name] = _signatures(service, definitions)
    if signatures is False or not isinstance(raw, dict):
        return None
    return _coerce(signatures, raw)


def _coerce(signatures: list[tuple[str, Callable[[Any], Any]]], raw: dict[str, Any]) -> Any:
    """The variables coerced by their signatures; None when any is missing, null or not plain."""
    coerced = {}
    for name, coerce in signatures:
        value = raw.get(name)
        if value is None:
            return None
        value = coerce(value)
        if value is _NOT_PLAIN:
            return None
        coerced[name] = value
    return coerced


def _signatures(
    service: ServiceApi, definitions: Any
) -> list[tuple[str, Callable[[Any], Any]]] | bool:
    found = []
    for definition in definitions:
        if definition.default_value is not None:
            return False
        t = type_from_ast(service.graphql_schema, definition.type)
        if isinstance(t, GraphQLNonNull):
            t = t.of_type
        coerce = _SCALARS.get(t) if isinstance(t, GraphQLScalarType) else None
        if coerce is None:
            return False
        found.append((definition.variable.name.value, coerce))
    return found


def _too_many_root_fields(selected: int, limit: int) -> str:
    return (
        f"This operation selects {selected} root fields (aliases and fragments included); this "
        f"server runs at most {limit} per operation, as each is a statement of its own. Split "
        f"it into several requests."
    )


def _read(
    fields: list[CompiledField],
    variables: dict[str, Any],
    request_id: str,
    introspection: dict[str, Any] | None = None,
    limits: RequestLimits | None = None,
) -> Steps[tuple[int, bytes]]:
    """The steps of a query's compiled root fields (`_read_steps`); one plain field without
    a response limit, the commonest read, as `_OneRead`."""
    if len(fields) == 1 and (limits is None or limits.response_bytes is None):
        f = fields[0]
        if f.kind == "sql" and f.error is None:
            return _OneRead(f, variables, request_id)  # type: ignore[return-value]
    return _read_steps(fields, variables, request_id, introspection, limits)


class _OneRead(OneStatement[tuple[int, bytes]]):
    """A query of one plain root field: its statement, and its answer from the statement's row
    as `_read_steps` makes it, relocated if the request's literals were hoisted."""

    __slots__ = ("field", "hoisted", "request_id", "variables")

    def __init__(self, f: CompiledField, variables: dict[str, Any], request_id: str) -> None:
        super().__init__()
        self.field = f
        self.variables = variables
        self.request_id = request_id
        self.hoisted: Hoisted | None = None

    def statement(self) -> Sql | None:
        assert self.field.statement is not None
        try:
            return Sql(self.field.sql, self.field.statement.bind(self.variables))
        except PrismaError:
            return None  # the generator answers it

    def value(self, result: Result) -> tuple[int, bytes]:
        rows = result.rows
        value = rows[0][0] if rows else None
        body = b'{"data":{%s:%s}}' % (
            self.field.key_json,
            value.encode() if value is not None else b"null",
        )
        return 200, body if self.hoisted is None else self.hoisted.relocate(body)

    def steps(self) -> Steps[tuple[int, bytes]]:
        read = _read_steps([self.field], self.variables, self.request_id)
        return read if self.hoisted is None else _relocated(read, self.hoisted)


def _read_steps(
    fields: list[CompiledField],
    variables: dict[str, Any],
    request_id: str,
    introspection: dict[str, Any] | None = None,
    limits: RequestLimits | None = None,
) -> Steps[tuple[int, bytes]]:
    """Run the compiled root fields of a query, one statement each, and splice their JSON
    texts into the answer. Runs in autocommit: a read is one round trip. With a response limit
    each statement measures its JSON and gives it back only while the answer fits."""
    budget = limits if limits is not None and limits.response_bytes is not None else None
    parts: list[bytes] = []
    problems: list[dict[str, Any]] = []
    null_data = False
    for f in fields:
        key = f.key_json
        if f.kind == "typename":
            parts.append(key + b':"Query"')
            continue
        if f.kind == "introspection":
            parts.append(key + b":" + dump((introspection or {}).get(f.key)))
            continue
        try:
            if f.error is not None:
                raise f.error
            assert f.statement is not None
            if budget is None:
                row = (yield Sql(f.sql, f.statement.bind(variables))).one()
                value = row[0] if row else None
                parts.append(key + b":" + (value.encode() if value is not None else b"null"))
            else:
                params = [budget.room(), *f.statement.bind(variables)]
                row = (yield Sql(f.capped_sql, params)).one()
                parts.append(key + b":" + (budget.answered(*row) if row else b"null"))
        except (PrismaError, pg_errors.DataError) as exc:
            if isinstance(exc, pg_errors.DataError):
                exc = invalid_input(exc)
            problems.append(error_entry(exc, f.key, f.nodes, request_id))
            parts.append(key + b":null")
            null_data = null_data or f.non_null
    data = b"null" if null_data else b"{" + b",".join(parts) + b"}"
    if problems:
        return 200, b'{"data":' + data + b',"errors":' + dump(problems) + b"}"
    return 200, b'{"data":' + data + b"}"


def plan(
    service: ServiceApi,
    payload: Any,
    request_id: str,
    *,
    cached_only: bool = False,
    limits: RequestLimits | None = None,
    sink: EventSink | None = None,
) -> Steps[tuple[int, bytes]] | None:
    """The steps that answer a request body (status and JSON body), for any driver.

    The steps name no service: their statements use the placeholder schema, which the driver
    binds to the schema of the service it runs them for. So everything planned here (documents,
    compiled statements) is shared by every service deployed with the same datamodel.

    Parsing, validation and compilation happen here, before any connection is taken. With
    `cached_only` they must already be cached (the common case: clients send the same few
    documents with new values), so planning costs microseconds and suits the event loop; a
    request that needs more (a document seen for the first time, introspection) gives None.

    `limits` (one object for the whole request, a batch included) hold the answer to its
    response budget and, on a sandbox, the mutations to the storage cap; an operation selecting
    more root fields than `limits.root_fields` is answered with an error and runs nothing.
    With `sink`, mutations publish their events there (the service's subscription channel).
    """
    if isinstance(payload, list):
        items = [
            plan(service, item, request_id, cached_only=cached_only, limits=limits, sink=sink)
            for item in payload
        ]
        if any(item is None for item in items):
            return None
        return _batch(items)  # type: ignore[arg-type]
    max_root_fields = limits.root_fields if limits is not None else None
    prepared = _prepared(service, payload, max_root_fields)
    if prepared is not None:
        return _read(*prepared, request_id, None, limits)
    request = _request(
        service,
        payload,
        request_id,
        cached_only=cached_only,
        max_root_fields=max_root_fields,
    )
    if request is None:
        return None
    if not isinstance(request, _Request):
        return answered(request)
    steps = _operation(service, request, request_id, cached_only, limits, sink)
    if steps is None or request.hoisted is None:
        return steps
    if isinstance(steps, _OneRead):
        steps.hoisted = request.hoisted
        return steps
    return _relocated(steps, request.hoisted)


def _prepared(
    service: ServiceApi, payload: Any, max_root_fields: int | None
) -> tuple[list[CompiledField], dict[str, Any]] | None:
    """The compiled fields and coerced variables of a request for a prepared query
    (`_Document.prepared`): what `_request` and `_operation` would find, without their
    lookups. None for anything else, or anything these checks would not answer exactly as
    they do (a variable missing, null or of another type, variables sent as a JSON string,
    variables for a query that declares none): the full road answers those."""
    if not isinstance(payload, dict):
        return None
    text = payload.get("query")
    if not isinstance(text, str):
        return None
    loaded = service.documents.lookup(text)
    if loaded is None or not loaded.prepared:
        return None
    name = payload.get("operationName") or None
    if name is not None and not isinstance(name, str):
        return None
    found = loaded.prepared.get(name)
    if found is None:
        return None
    signatures, fields, count = found
    if max_root_fields is not None and count > max_root_fields:
        return None
    raw = payload.get("variables")
    if not signatures:
        return (fields, {}) if raw is None or raw == {} else None
    variables = _coerce(signatures, raw) if type(raw) is dict else None
    return None if variables is None else (fields, variables)


def _relocated(steps: Steps[tuple[int, bytes]], hoisted: Hoisted) -> Steps[tuple[int, bytes]]:
    status, body = yield from steps
    return status, hoisted.relocate(body)


def _operation(
    service: ServiceApi,
    request: _Request,
    request_id: str,
    cached_only: bool,
    limits: RequestLimits | None,
    sink: EventSink | None,
) -> Steps[tuple[int, bytes]] | None:
    """The steps of one valid operation (see `plan`)."""
    operation = request.operation
    if operation.operation == OperationType.MUTATION:
        return _mutation(service, request, request_id, limits, sink)
    if operation.operation == OperationType.SUBSCRIPTION:
        message = "Subscriptions are served over websockets: open one to this endpoint."
        return answered((200, dump({"data": None, "errors": [{"message": message}]})))
    key = _compiled_key(service, request)
    fields: list[CompiledField] | None = service.compiled.lookup(key)
    if fields is None:
        if cached_only:
            return None
        fields = _compile(service, operation, request.fragments, request.variables)
        if all(f.error is None for f in fields):
            service.compiled.remember(key, fields)
            _remember_prepared(service, request, fields)
    introspection = None
    if any(f.kind == "introspection" for f in fields):
        if cached_only:
            return None
        introspection = _introspect(service, request.text, operation, request.variables)
    return _read(fields, request.variables, request_id, introspection, limits)


def _remember_prepared(service: ServiceApi, request: _Request, fields: list[CompiledField]) -> None:
    """Prepare the request's query (see `_Document.prepared`) when its fields compiled to
    plain statements, its variables are String, ID or Float values (`shape` leaves them out of
    the compiled key: any value runs the same SQL), all given, and its text was sent as it
    is."""
    if request.hoisted is not None or any(f.kind not in ("sql", "typename") for f in fields):
        return
    loaded = service.documents.lookup(request.text)
    if loaded is None or loaded.document is not request.document or loaded.roots is None:
        return
    name = request.operation.name.value if request.operation.name else None
    signatures = (
        _signatures(service, request.operation.variable_definitions)
        if request.operation.variable_definitions
        else []
    )
    if signatures is False or any(coerce in _SHAPED for _, coerce in signatures):
        return
    # The compiled key holds whether each variable was given: the fields are the prepared
    # ones only when all were, as `_prepared` requires of every request it answers.
    if any(request.variables.get(variable) is None for variable, _ in signatures):
        return
    loaded.prepared[request.operation_name] = (signatures, fields, loaded.roots[name].count)


def _mutation(
    service: ServiceApi,
    request: _Request,
    request_id: str,
    limits: RequestLimits | None,
    sink: EventSink | None,
) -> Steps[tuple[int, bytes]]:
    body = yield from run_mutation(
        service,
        request.operation,
        request.fragments,
        request.variables,
        request_id,
        limits,
        sink,
    )
    return 200, body


def _batch(items: list[Steps[tuple[int, bytes]]]) -> Steps[tuple[int, bytes]]:
    """A JSON array of operations, answered in order with an array (always HTTP 200)."""
    bodies = []
    for item in items:
        _, body = yield from item
        bodies.append(body)
    return 200, b"[" + b",".join(bodies) + b"]"


def _compiled_key(service: ServiceApi, request: _Request) -> tuple[Any, ...]:
    """Compiled SQL is keyed by document, operation and the shape of the variables."""
    return (
        request.key,
        request.operation_name,
        _variable_shape(service, request.operation, request.variables),
    )


def _variable_shape(
    service: ServiceApi, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> tuple[Any, ...]:
    parts = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        t = type_from_ast(service.graphql_schema, definition.type)
        parts.append((name, name in variables, shape(variables.get(name), t)))  # type: ignore[arg-type]
    return tuple(parts)


def _compile(
    service: ServiceApi,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
) -> list[CompiledField]:
    """One statement (or the error it compiles to) per root field of a query."""
    reader = ReadCompiler(service.api, service.graphql_schema, fragments, variables, Statement())
    roots = reader.collect([operation.selection_set], "Query")
    return [
        compile_query_field(service.api, service.graphql_schema, fragments, variables, key, nodes)
        for key, nodes in roots.items()
    ]


def _introspect(
    service: ServiceApi, text: str, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> dict[str, Any]:
    """Introspection fields through graphql-core; data fields are left to the compiler."""
    selections = tuple(
        s
        for s in operation.selection_set.selections
        if isinstance(s, FieldNode) and s.name.value in ("__schema", "__type")
    )
    only_introspection = replace(operation, selection_set=SelectionSetNode(selections=selections))
    fragments = tuple(d for d in parse(text).definitions if isinstance(d, FragmentDefinitionNode))
    result = execute_sync(
        service.graphql_schema,
        DocumentNode(definitions=(only_introspection, *fragments)),
        variable_values=variables,
    )
    return result.data or {}
