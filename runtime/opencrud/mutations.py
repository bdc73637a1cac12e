"""Mutations: the root fields of reference 5.2 and the nested operations of their inputs.

The request runs in one transaction; with several root fields each gets a savepoint, so a
failing field (unique violation, missing node, broken required relation) undoes only its own
writes, as each Prisma mutation is atomic. The node a mutation returns is read back with the
query compiler, so its JSON is built by PostgreSQL exactly as for queries. Everything here is
steps (see `steps`): it yields statements and never holds a connection.
"""

from __future__ import annotations

import json
import re
from typing import Any

from graphql import FieldNode, FragmentDefinitionNode, GraphQLNonNull, OperationDefinitionNode
from psycopg import errors as pg_errors

from runtime.envelope import error_body
from runtime.errors import PrismaError
from runtime.names import ident
from runtime.opencrud import errors
from runtime.opencrud.errors import invalid_input
from runtime.opencrud.limits import RequestLimits, capped
from runtime.opencrud.model import ApiField, ApiModel
from runtime.opencrud.naming import plural
from runtime.opencrud.reads import ReadCompiler
from runtime.opencrud.roots import where_unique_field
from runtime.opencrud.service import ServiceApi
from runtime.opencrud.statement import Statement, column
from runtime.opencrud.steps import BEGIN, COMMIT, ROLLBACK, Sql, Steps
from runtime.opencrud.values import plain
from runtime.opencrud.writes import Writer
from runtime.subscriptions import events
from runtime.subscriptions.events import EventSink

UNREAD = object()  # a node's previous values not read yet
ROOT_KINDS = ("create", "updateMany", "update", "upsert", "deleteMany", "delete")


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class Mutation:
    """Nested inputs of one request, applied through a `Writer`.

    Every method is steps (see `steps`): `yield from` runs it and gives its value.
    """

    def __init__(self, writer: Writer) -> None:
        self.w = writer

    # Whole nodes --------------------------------------------------------------------------

    def create(
        self, model: ApiModel, data: dict[str, Any], via: ApiField | None = None
    ) -> Steps[Any]:
        """Create a node; `via` is its field back to the parent of a nested create, if any.

        A required to-one relation that the input neither creates nor connects is 3032, before
        anything is written (Prisma's `RelationIsRequired`, raised while planning the creates).
        """
        for f in model.relation_fields:
            if f.is_required and f is not via and not _creates_or_connects(data.get(f.name)):
                raise errors.relation_is_required(f.name, model.name)
        node_id = yield from self.w.insert_node(model, data)
        for f in model.relation_fields:
            if data.get(f.name) is not None:
                yield from self.nested_create(f, node_id, data[f.name])
        return node_id

    def update(
        self, model: ApiModel, node_id: Any, data: dict[str, Any], previous: Any = UNREAD
    ) -> Steps[None]:
        """Update a node the request names; `previous`: its values, when the caller read them
        already (`Writer.require_unique_before_write`)."""
        if previous is UNREAD:
            previous = yield from self.w.previous_values(model, node_id)
        yield from self.w.update_scalars(model, [node_id], data)
        if self.w.events is not None:
            names = [f.name for f in model.scalar_fields if f.name in data]
            self.w.events.append(events.updated(model, node_id, names, previous))
        for f in model.relation_fields:
            if data.get(f.name) is not None:
                if f.is_list:
                    yield from self.nested_update_many(f, node_id, data[f.name])
                else:
                    yield from self.nested_update_one(f, node_id, data[f.name])

    def delete(self, model: ApiModel, node_id: Any, previous: Any = UNREAD) -> Steps[None]:
        """Delete one node the request names (a cascade's nodes publish nothing, as in Prisma)."""
        if previous is UNREAD:
            previous = yield from self.w.previous_values(model, node_id)
        yield from self.w.delete_node(model, node_id)
        if self.w.events is not None:
            self.w.events.append(events.deleted(model, node_id, previous))

    def create_linked(self, f: ApiField, parent_id: Any, data: dict[str, Any]) -> Steps[None]:
        child = yield from self.create(f.target, data, f.related)
        yield from self.w.link(f, parent_id, child)

    def connect(self, f: ApiField, parent_id: Any, where: dict[str, Any]) -> Steps[None]:
        child = yield from self.w.require_unique(f.target, where)
        yield from self.w.link(f, parent_id, child)

    # Nested inputs ------------------------------------------------------------------------

    def nested_create(self, f: ApiField, parent_id: Any, value: dict[str, Any]) -> Steps[None]:
        for item in as_list(value.get("create")):
            yield from self.create_linked(f, parent_id, item)
        for where in as_list(value.get("connect")):
            yield from self.connect(f, parent_id, where)

    def connected(
        self,
        f: ApiField,
        parent_id: Any,
        where: dict[str, Any],
        parent: ApiModel,
        update: bool = False,
    ) -> Steps[Any]:
        """The child `where` names, which must exist (3039) and be connected (3041).

        The 3041 text names what Prisma's check knows: for a nested update the child's where
        only, for a delete or disconnect both ids (`ensureThatNodesAreConnected`)."""
        child = yield from self.w.require_unique(f.target, where)
        if child not in (yield from self.w.related_ids(f, parent_id)):
            assert f.relation is not None
            if update:
                field, value = where_unique_field(f.target, where)
                ends: tuple[Any, Any] = (None, (field.name, value))
            else:
                ends = (("id", parent_id), ("id", child))
            raise errors.nodes_not_connected(
                f.relation.name, parent.name, ends[0], f.target.name, ends[1]
            )
        return child

    def current(self, f: ApiField, parent_id: Any, update: bool = False) -> Steps[Any]:
        """The one child of a to-one relation (3041 when there is none)."""
        children = yield from self.w.related_ids(f, parent_id)
        if not children:
            assert f.relation is not None
            parent_where = None if update else ("id", parent_id)
            raise errors.nodes_not_connected(
                f.relation.name, f.model.name, parent_where, f.target.name, None
            )
        return children[0]

    def nested_update_many(self, f: ApiField, parent_id: Any, value: dict[str, Any]) -> Steps[None]:
        target = f.target
        for item in as_list(value.get("create")):
            yield from self.create_linked(f, parent_id, item)
        for item in as_list(value.get("update")):
            child = yield from self.connected(f, parent_id, item["where"], f.model, update=True)
            yield from self.update(target, child, item.get("data") or {})
        for item in as_list(value.get("upsert")):
            child = yield from self.w.find_unique(target, item["where"])
            if child is not None and child in (yield from self.w.related_ids(f, parent_id)):
                yield from self.update(target, child, item.get("update") or {})
            else:
                yield from self.create_linked(f, parent_id, item.get("create") or {})
        for where in as_list(value.get("delete")):
            child = yield from self.connected(f, parent_id, where, f.model)
            yield from self.delete(target, child)
        for where in as_list(value.get("connect")):
            yield from self.connect(f, parent_id, where)
        if "set" in value and value["set"] is not None:
            wanted = []
            for where in as_list(value["set"]):
                wanted.append((yield from self.w.require_unique(target, where)))
            for child in (yield from self.w.related_ids(f, parent_id)):
                if child not in wanted:
                    yield from self.w.unlink(f, parent_id, child)
            for child in wanted:
                yield from self.w.link(f, parent_id, child)
        for where in as_list(value.get("disconnect")):
            child = yield from self.connected(f, parent_id, where, f.model)
            yield from self.w.unlink(f, parent_id, child)
        # updateMany before deleteMany, as Prisma's `allNestedMutactions` orders them.
        for item in as_list(value.get("updateMany")):
            related = yield from self.w.related_ids(f, parent_id)
            children = yield from self.w.ids_where(target, item.get("where"), related)
            yield from self.w.update_scalars(target, children, item.get("data") or {})
        for where in as_list(value.get("deleteMany")):
            related = yield from self.w.related_ids(f, parent_id)
            for child in (yield from self.w.ids_where(target, where, related)):
                yield from self.w.delete_node(target, child)

    def nested_update_one(self, f: ApiField, parent_id: Any, value: dict[str, Any]) -> Steps[None]:
        target = f.target
        if value.get("create") is not None:
            yield from self.create_linked(f, parent_id, value["create"])
        if value.get("connect") is not None:
            yield from self.connect(f, parent_id, value["connect"])
        if value.get("update") is not None:
            child = yield from self.current(f, parent_id, update=True)
            yield from self.update(target, child, value["update"])
        if value.get("upsert") is not None:
            children = yield from self.w.related_ids(f, parent_id)
            if children:
                yield from self.update(target, children[0], value["upsert"].get("update") or {})
            else:
                yield from self.create_linked(f, parent_id, value["upsert"].get("create") or {})
        if value.get("delete"):
            child = yield from self.current(f, parent_id)
            yield from self.delete(target, child)
        if value.get("disconnect"):
            child = yield from self.current(f, parent_id)
            yield from self.w.unlink(f, parent_id, child)


def _creates_or_connects(value: Any) -> bool:
    """A relation input that gives the new node a related node (a create or a connect)."""
    return isinstance(value, dict) and any(
        value.get(kind) not in (None, []) for kind in ("create", "connect")
    )


def root_mutations(service_api: ServiceApi) -> dict[str, tuple[str, ApiModel]]:
    """The root mutation fields by name: their kind and model (made once per API)."""
    names = service_api.mutation_roots
    if names is None:
        names = {}
        for model in service_api.api.models.values():
            for kind in ("create", "update", "upsert", "delete"):
                names[f"{kind}{model.name}"] = (kind, model)
            for kind in ("updateMany", "deleteMany"):
                names[f"{kind}{plural(model.name)}"] = (kind, model)
        service_api.mutation_roots = names
    return names


def run_mutation(
    service: ServiceApi,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    request_id: str,
    limits: RequestLimits | None = None,
    sink: EventSink | None = None,
) -> Steps[bytes]:
    """Run the root fields of a mutation in order, each atomic, in one transaction.

    With `sink`, the nodes it creates, updates and deletes are published to the service's
    subscribers inside the transaction, so they leave with its COMMIT (`subscriptions.events`).

    With `limits`, the nodes it answers are held to the response budget, and on a sandbox the
    storage guard sees the writes' growth before COMMIT and may roll the whole request back."""
    limits = limits or RequestLimits()
    st = Statement()
    compiler = ReadCompiler(service.api, service.graphql_schema, fragments, variables, st)
    roots = compiler.collect([operation.selection_set], "Mutation")
    mutation_type = service.graphql_schema.mutation_type
    parts: list[bytes] = []
    problems: list[dict[str, Any]] = []
    null_data = False
    # A field's INSERTs ride with the statement after them (`Writer.defers`), so their failures
    # can surface at any later statement of the field, its savepoint's release or, with one
    # field, the COMMIT: each of those is inside the field's `try`.
    writer = Writer(service.api, publishes=sink is not None, defers=True)
    # With one root field the request's transaction is all the atomicity needed; a savepoint
    # per field (two more round trips) only matters when a failed field must spare the others.
    fields = [nodes for nodes in roots.values() if nodes[0].name.value != "__typename"]
    single = len(fields) == 1
    yield BEGIN
    for index, (key, nodes) in enumerate(roots.items()):
        name = nodes[0].name.value
        encoded = b'"' + key.encode() + b'"'  # a GraphQL name: nothing to escape
        if name == "__typename":
            parts.append(encoded + b':"Mutation"')
            continue
        definition = mutation_type.fields[name]
        savepoint = f"field_{index}"
        published = len(writer.events or ())
        try:
            if not single:
                yield Sql(f"SAVEPOINT {savepoint}")
            value = yield from _root_field(
                service, compiler, writer, name, nodes, definition, limits
            )
            yield from writer.check_required_relations()
            if single:
                refused = yield from _commit(writer, limits, sink)
                if refused is not None:
                    return error_body(refused.code, refused.message, request_id)
            else:
                yield Sql(f"RELEASE SAVEPOINT {savepoint}")
            parts.append(encoded + b":" + value)
        except (PrismaError, *WRITE_ERRORS) as exc:
            failure = exc if isinstance(exc, PrismaError) else write_failure(service, exc)
            if not single:
                yield Sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
            writer.touched.clear()
            if writer.events is not None:
                del writer.events[published:]  # the field's writes were undone
            problems.append(errors.error_entry(failure, key, nodes, request_id))
            parts.append(encoded + b":null")
            null_data = null_data or isinstance(definition.type, GraphQLNonNull)
    # One failed field of one undoes its writes; otherwise each failed field's savepoint did.
    if single and problems:
        yield ROLLBACK
    elif not single:
        refused = yield from _commit(writer, limits, sink)
        if refused is not None:
            return error_body(refused.code, refused.message, request_id)
    data = b"null" if null_data else b"{" + b",".join(parts) + b"}"
    if problems:
        return b'{"data":' + data + b',"errors":' + json.dumps(problems).encode() + b"}"
    return b'{"data":' + data + b"}"


def _commit(
    writer: Writer, limits: RequestLimits, sink: EventSink | None
) -> Steps[PrismaError | None]:
    """The end of a mutation's transaction: the storage guard's check on a sandbox, the
    subscription events, COMMIT. The guard's refusal is rolled back and returned."""
    if limits.storage is not None:
        try:
            yield from limits.storage.before_commit(writer.growth)
        except PrismaError as exc:
            yield ROLLBACK
            return exc
    published = sink is not None and writer.events
    if not published or not (yield from events.publish(sink, writer.events, commit=True)):
        yield COMMIT
    return None


# What a write's failure means to the client (`write_failure`); anything else is a bug.
WRITE_ERRORS = (pg_errors.UniqueViolation, pg_errors.StringDataRightTruncation, pg_errors.DataError)


def write_failure(service: ServiceApi, exc: Exception) -> PrismaError:
    """The Prisma error for a failed write (one of `WRITE_ERRORS`)."""
    if isinstance(exc, pg_errors.UniqueViolation):
        return _unique_violation(service, exc)
    if isinstance(exc, pg_errors.StringDataRightTruncation):
        return PrismaError(3007, f"Value for field {exc.diag.column_name or 'id'} is too long.")
    return invalid_input(exc)


def _root_field(
    service: Any,
    compiler: ReadCompiler,
    writer: Writer,
    name: str,
    nodes: list[FieldNode],
    definition: Any,
    limits: RequestLimits,
) -> Steps[bytes]:
    kind, model = root_mutations(service)[name]
    args = plain(compiler.arguments(nodes[0], definition))
    mutation = Mutation(writer)
    created = False  # an update's nested writes could delete its own node (a self-relation)
    try:
        if kind == "create":
            node_id = yield from mutation.create(model, args.get("data") or {})
            created = True
        elif kind == "update":
            node_id, previous = yield from writer.require_unique_before_write(model, args["where"])
            yield from mutation.update(model, node_id, args["data"], previous)
        elif kind == "upsert":
            node_id = yield from writer.find_unique(model, args["where"])
            if node_id is None:
                node_id = yield from mutation.create(model, args["create"])
                created = True
            else:
                yield from mutation.update(model, node_id, args["update"])
        elif kind == "delete":
            node_id, previous = yield from writer.require_unique_before_write(model, args["where"])
            body = yield from _read_node(compiler, model, node_id, nodes, writer, limits, True)
            yield from mutation.delete(model, node_id, previous)
            return body
        else:
            ids = yield from writer.ids_where(model, args.get("where"))
            if kind == "updateMany":
                yield from writer.update_scalars(model, ids, args.get("data") or {})
            else:
                for node_id in ids:
                    yield from writer.delete_node(model, node_id)
            return _batch_payload(compiler, nodes, len(ids))
        return (yield from _read_node(compiler, model, node_id, nodes, writer, limits, created))
    except WRITE_ERRORS as exc:
        raise write_failure(service, exc) from exc


def _read_node(
    compiler: ReadCompiler,
    model: ApiModel,
    node_id: Any,
    nodes: list[FieldNode],
    writer: Writer,
    limits: RequestLimits,
    exists: bool = False,
) -> Steps[bytes]:
    """The node's JSON as the API answers it, read back in the transaction; with `exists` (a
    node just created, or about to be deleted), an id-only selection is answered unread."""
    st = Statement()
    reader = ReadCompiler(
        compiler.api, compiler.graphql_schema, compiler.fragments, compiler.variables, st
    )
    fields = reader.sub_fields(nodes, model.name)
    plain = exists and limits.response_bytes is None
    known = _known_answer(model, node_id, fields) if plain else None
    if known is not None:
        return known
    a = st.alias()
    body = reader.node_json(model, a, fields)
    p = st.param(node_id)
    query = (
        f"SELECT (SELECT {body} FROM {st.table(model)} {a} "  # noqa: S608
        f"WHERE {column(a, model.id_field)} = {p})::text"
    )
    if limits.response_bytes is None:
        row = (yield from writer.run(query, st.bind(compiler.variables))).one()
        return row[0].encode() if row and row[0] is not None else b"null"
    # Over the budget the field fails, and its savepoint (or the request) is rolled back.
    params = [limits.room(), *st.bind(compiler.variables)]
    row = (yield from writer.run(capped(query), params)).one()
    return limits.answered(*row) if row else b"null"


def _known_answer(
    model: ApiModel, node_id: Any, fields: dict[str, list[FieldNode]]
) -> bytes | None:
    """The node's JSON without reading it back, when the selection holds only what the request
    already knows: its id field (the row exists: the request created it, or found it just before
    deleting it, in this transaction) and `__typename`. Creates that select `{ id }`, the common
    answer, save a statement. Only a plain cuid-like ID, whose JSON text is the same whoever
    writes it; anything else is read. Response keys are GraphQL names and model names
    identifiers: neither needs escaping."""
    if model.id_field.type_name != "ID" or not isinstance(node_id, str):
        return None
    if _PLAIN_ID.fullmatch(node_id) is None:
        return None
    pairs = []
    for key, nodes in fields.items():
        name = nodes[0].name.value
        if name == model.id_field.name:
            pairs.append(f'"{key}" : "{node_id}"')
        elif name == "__typename":
            pairs.append(f'"{key}" : "{model.name}"')
        else:
            return None
    return ("{" + ", ".join(pairs) + "}").encode()  # as json_build_object writes it


_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _batch_payload(compiler: ReadCompiler, nodes: list[FieldNode], count: int) -> bytes:
    payload = {}
    for key, sub in compiler.sub_fields(nodes, "BatchPayload").items():
        payload[key] = "BatchPayload" if sub[0].name.value == "__typename" else count
    return json.dumps(payload).encode()


def _unique_violation(service: Any, exc: pg_errors.UniqueViolation) -> PrismaError:
    """3010 naming the model and field whose unique index refused the row."""
    table = exc.diag.table_name or ""
    constraint = exc.diag.constraint_name or ""
    for model in service.api.models.values():
        if model.table != table:
            continue
        for f in model.scalar_fields:
            if constraint.startswith(f"{model.table}.{f.column}.") or (
                f.is_id and constraint == f"{model.table}_pkey"
            ):
                return errors.unique_violation(model.name, f.name)
        return errors.unique_violation(model.name, model.id_field.name)
    return errors.unique_violation(table, ident(constraint))
