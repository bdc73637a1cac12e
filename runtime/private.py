"""A service's private endpoint (`.../private`, reference 5.8): `resetData` and
`validateSubscriptionQuery`."""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError, build_schema, graphql_sync, parse
from psycopg import Connection

from runtime import ndf

SCHEMA = build_schema(
    """
    type Query {
      validateSubscriptionQuery(query: String!): SubscriptionQueryValidationResult!
    }
    type SubscriptionQueryValidationResult {
      errors: [String!]!
    }
    type Mutation {
      resetData: Boolean
    }
    """
)


def _validate_subscription(_: object, info: Any, query: str) -> dict[str, list[str]]:
    """Subscriptions are not served by this runtime, so only the document's syntax and shape
    can be checked: it must parse and be a subscription."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return {"errors": [exc.message]}
    operations = [d for d in document.definitions if getattr(d, "operation", None)]
    if not operations or any(d.operation.value != "subscription" for d in operations):
        return {"errors": ["The query must be a subscription."]}
    return {"errors": []}


def _reset_data(_: object, info: Any) -> bool:
    conn, schema_name = info.context
    ndf.reset_data(conn, schema_name)
    return True


SCHEMA.query_type.fields["validateSubscriptionQuery"].resolve = _validate_subscription
SCHEMA.mutation_type.fields["resetData"].resolve = _reset_data


def execute(conn: Connection, schema_name: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return {"errors": [{"message": "Send a JSON object with a `query` string."}]}
    result = graphql_sync(
        SCHEMA,
        payload["query"],
        variable_values=payload.get("variables") or None,
        operation_name=payload.get("operationName"),
        context_value=(conn, schema_name),
    )
    return result.formatted
