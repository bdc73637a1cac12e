"""The runtime's answers: Prisma's JSON error envelope and the ASGI responses that carry them.

One module for the app, the management API and the data API's executor, so an error looks the
same wherever it is raised (reference section 0): `{"errors": [{"message", "code", "requestId"}]}`
for Prisma errors, graphql-core's `message` and `locations` for validation errors, and a 500 that
names only the request id for anything unexpected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from graphql import GraphQLError

from runtime.errors import PrismaError

log = logging.getLogger("runtime")

Send = Callable[[dict[str, Any]], Awaitable[None]]

INTERNAL_ERROR = (
    "Whoops. Looks like an internal server error. Search your server logs for request ID: {}"
)
# Service endpoints answer any origin, as Prisma's do (browser apps call them). The management
# API never does: a web page must not reach it with the developer's network position.
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    # `*` does not cover Authorization (Fetch standard): a page on another origin (the
    # console's playground) sends it, so it is named.
    (b"access-control-allow-headers", b"authorization, *"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
]


class RawJson(bytes):
    """A body already serialised (the data API's answers: PostgreSQL built the JSON)."""


def dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def error(code: int, message: str, request_id: str) -> dict[str, Any]:
    """A Prisma error raised before or outside GraphQL execution."""
    return {"errors": [{"message": message, "code": code, "requestId": request_id}]}


def error_body(code: int, message: str, request_id: str) -> bytes:
    return dump(error(code, message, request_id))


def message_only(message: str) -> dict[str, Any]:
    return {"errors": [{"message": message}]}


def internal_error(request_id: str) -> dict[str, Any]:
    """Prisma's top-level handler: the request id and no code (the details go to the log)."""
    return {"errors": [{"message": INTERNAL_ERROR.format(request_id), "requestId": request_id}]}


def graphql_error(error: GraphQLError) -> dict[str, Any]:
    """A validation error as graphql-core reports it: message and locations."""
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [{"line": x.line, "column": x.column} for x in error.locations]
    return formatted


def execution_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """An error raised by a resolver: a PrismaError keeps its code; anything else is logged and
    answered as an internal error."""
    formatted = graphql_error(error)
    if error.path:
        formatted["path"] = error.path
    original = error.original_error
    if isinstance(original, PrismaError):
        formatted["code"] = original.code
        formatted["requestId"] = request_id
    elif original is not None:
        log.error("request %s failed", request_id, exc_info=original)
        formatted["message"] = INTERNAL_ERROR.format(request_id)
        formatted["requestId"] = request_id
    return formatted


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    request_id: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    *,
    cors: bool = True,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"request-id", request_id.encode()),
                *(CORS_HEADERS if cors else ()),
                *(extra_headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def respond_json(
    send: Send,
    status: int,
    payload: Any,
    request_id: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    *,
    cors: bool = True,
) -> None:
    body = bytes(payload) if isinstance(payload, RawJson) else dump(payload)
    await respond(send, status, body, "application/json", request_id, extra_headers, cors=cors)
