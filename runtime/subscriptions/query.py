"""A subscription document: checked once when it starts, then evaluated for every event.

Prisma's rules (`SubscriptionExecutor`, `QueryTransformer`, `SubscriptionQueryValidator`):

- The document is validated against the service's schema; the model is the one the root field
  of its subscription operation names (`post` for `Post`).
- The filters Prisma evaluates in memory, wherever they sit in `where` (inside `AND`, `OR`
  and `NOT` too), must all hold: `mutation_in` names the event's kind; `updatedFields_contains`,
  `_contains_every` and `_contains_some` test the fields an update set (they do not apply to
  creates and deletes, as for filters given in variables).
- For a created or updated node, the rest of `where` (its `node` filters, under the same
  `AND`/`OR`/`NOT`) is a condition on the node as it is after the commit, read from the
  database with the `node` selection in the same statement; no row, no event.
- For a deleted node, `node` filters are ignored and `node` is null; `previousValues` holds
  the node as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLObjectType,
    GraphQLSyntaxError,
    OperationType,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from runtime.opencrud.depth import MAX_DEPTH, selection_depth
from runtime.opencrud.filters import where_condition
from runtime.opencrud.model import ApiModel
from runtime.opencrud.naming import camel_case
from runtime.opencrud.reads import ReadCompiler
from runtime.opencrud.service import ServiceApi
from runtime.opencrud.statement import Statement, column
from runtime.opencrud.values import plain
from runtime.subscriptions.events import DELETED, UPDATED

MAX_QUERY_TOKENS = 20_000
# Prisma's messages (`SubscriptionSessionActor`, `SubscriptionQueryValidator`).
NOT_VALID = "the GraphQL Query was not valid"
NO_MODEL = (
    "The provided query doesn't include any known model name. "
    "Please check for the latest subscriptions API."
)
IN_MEMORY = {
    "mutation_in",
    "updatedFields_contains",
    "updatedFields_contains_every",
    "updatedFields_contains_some",
}


class SubscriptionError(Exception):
    """A subscription that cannot start; the message is what the client is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class SubscriptionQuery:
    """A started subscription's document, compiled for its service's API."""

    api: ServiceApi
    model: ApiModel
    key: str  # the response key of the root field (its alias or name)
    where: dict[str, Any] | None
    payload_fields: dict[str, list[FieldNode]]
    previous_fields: dict[str, str]  # response key -> previousValues field ("" for __typename)
    node_sql: str
    node_params: list[Any]
    group: tuple[Any, ...]  # equal for subscriptions that answer every event alike
    selects_node: bool = field(default=False)

    def matches(self, event: dict[str, Any]) -> bool:
        """The in-memory filters (see the module's docstring)."""
        return _matches(self.where, event["k"], set(event.get("f") or ()))

    def data(self, event: dict[str, Any], node: Any) -> str:
        """The JSON text of `data` for an event (`node`: the node's selection, parsed)."""
        kind = event["k"]
        previous = event.get("pv") if kind != "CREATED" else None
        answer: dict[str, Any] = {}
        for key, nodes in self.payload_fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                answer[key] = f"{self.model.name}SubscriptionPayload"
            elif name == "mutation":
                answer[key] = kind
            elif name == "node":
                answer[key] = None if kind == DELETED else node
            elif name == "updatedFields":
                answer[key] = event.get("f") if kind == UPDATED else None
            elif name == "previousValues":
                answer[key] = None if previous is None else self._previous(previous)
        return json.dumps({self.key: answer}, separators=(",", ":"))

    def _previous(self, values: dict[str, Any]) -> dict[str, Any]:
        return {
            key: f"{self.model.name}PreviousValues" if name == "" else values.get(name)
            for key, name in self.previous_fields.items()
        }


def prepare(api: ServiceApi, payload: Any) -> SubscriptionQuery:
    """Check a `start` message's payload against the service's API (`SubscriptionError`)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        raise SubscriptionError(NOT_VALID)
    text = payload["query"]
    try:
        document = parse(text, max_tokens=MAX_QUERY_TOKENS)
    except GraphQLSyntaxError as exc:
        raise SubscriptionError(NOT_VALID) from exc
    # subscriptions-transport-ws sends "" for no operation name (its issue 174).
    operation_name = payload.get("operationName") or None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        raise SubscriptionError(NO_MODEL)
    first = next((s for s in operation.selection_set.selections if isinstance(s, FieldNode)), None)
    model = _model(api, first.name.value if first is not None else "")
    if model is None:
        raise SubscriptionError(NO_MODEL)
    if selection_depth(document) > MAX_DEPTH:
        raise SubscriptionError(
            f"The query is nested more than {MAX_DEPTH} levels deep; this server accepts at "
            f"most {MAX_DEPTH} levels of selections."
        )
    problems = validate(api.graphql_schema, document)
    if problems:
        raise SubscriptionError(problems[0].message)
    raw = payload.get("variables")
    if raw is not None and not isinstance(raw, dict):
        raise SubscriptionError(f"Variables could not be parsed as json: {raw}")
    values = get_variable_values(
        api.graphql_schema, operation.variable_definitions or (), raw or {}
    )
    if isinstance(values, list):
        raise SubscriptionError(values[0].message)
    variables = values.coerced
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    st = Statement()
    compiler = ReadCompiler(api.api, api.graphql_schema, fragments, variables, st)
    roots = compiler.collect([operation.selection_set], "Subscription")
    if len(roots) != 1:
        raise SubscriptionError(NO_MODEL)
    key, nodes = next(iter(roots.items()))
    subscription_type = api.graphql_schema.subscription_type
    assert isinstance(subscription_type, GraphQLObjectType)
    definition = subscription_type.fields[nodes[0].name.value]
    where = plain(compiler.arguments(nodes[0], definition).get("where"))
    payload_fields = compiler.sub_fields(nodes, f"{model.name}SubscriptionPayload")
    node_nodes = [n for ns in payload_fields.values() for n in ns if n.name.value == "node"]
    previous_nodes = [
        n for ns in payload_fields.values() for n in ns if n.name.value == "previousValues"
    ]
    previous_fields = {
        k: ("" if ns[0].name.value == "__typename" else ns[0].name.value)
        for k, ns in compiler.sub_fields(previous_nodes, f"{model.name}PreviousValues").items()
    }
    a = st.alias()
    body = (
        compiler.node_json(model, a, compiler.sub_fields(node_nodes, model.name))
        if node_nodes
        else "NULL::json"
    )
    condition = where_condition(st, model, a, _node_filter(where))
    id_param = st.param(None)
    node_sql = (
        f"SELECT ({body})::text FROM {st.table(model)} {a} "  # noqa: S608 - quoted names
        f"WHERE {condition} AND {column(a, model.id_field)} = {id_param}"
    )
    group = (
        api.version,
        text,
        operation_name,
        json.dumps(variables, sort_keys=True, default=str),
    )
    return SubscriptionQuery(
        api=api,
        model=model,
        key=key,
        where=where,
        payload_fields=payload_fields,
        previous_fields=previous_fields,
        node_sql=node_sql,
        node_params=st.bind(variables),
        group=group,
        selects_node=bool(node_nodes),
    )


def node_params(query: SubscriptionQuery, node_id: Any) -> list[Any]:
    """The node statement's parameters for one node (its id is the last one)."""
    return [*query.node_params[:-1], node_id]


def _model(api: ServiceApi, field_name: str) -> ApiModel | None:
    for model in api.api.models.values():
        if camel_case(model.name) == field_name:
            return model
    return None


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _matches(where: dict[str, Any] | None, kind: str, fields: set[str]) -> bool:
    if not where:
        return True
    for key, value in where.items():
        if value is None:
            continue
        if key == "mutation_in":
            if kind not in _items(value):
                return False
        elif key in IN_MEMORY:
            if kind != UPDATED:
                continue
            wanted = set(_items(value))
            if key == "updatedFields_contains_some":
                if not wanted & fields:
                    return False
            elif not wanted <= fields:
                return False
        elif key in ("AND", "OR", "NOT") and not all(
            _matches(item, kind, fields) for item in _items(value)
        ):
            return False
    return True


def _node_filter(where: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `<Model>WhereInput` left of a subscription's `where` once the in-memory filters are
    taken out; empty parts (`{mutation_in: ...}` alone) are dropped, as Prisma drops them."""
    if not where:
        return None
    parts: dict[str, Any] = {}
    ands = [where["node"]] if where.get("node") else []
    for key in ("AND", "OR", "NOT"):
        items = [f for f in (_node_filter(i) for i in _items(where.get(key))) if f]
        if key == "AND":
            ands += items
        elif items:
            parts[key] = items
    if ands:
        parts["AND"] = ands
    return parts or None
