"""The HTTP face of the runtime: a small ASGI application (reference section 0).

Routes: `GET /status`, `POST /management` (the management API), and the service endpoints
`/`, `/<service>`, `/<service>/<stage>`, `/<workspace>/<service>/<stage>` with the suffixes
`/private`, `/import`, `/export` and `/_datamodel`. The request's Host picks the tenant.

Data requests whose documents are already compiled (clients send the same few documents with
new values) run on the event loop with an asyncio connection: planning them costs microseconds
and the loop awaits PostgreSQL. Everything else (a document seen for the first time,
introspection, large bodies, the management API, the bulk endpoints) is synchronous psycopg in a
worker thread. Both run the same steps (`runtime.opencrud.steps`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from graphql import (
    GraphQLError,
    GraphQLSyntaxError,
    execute_sync,
    parse,
    validate,
)
from psycopg import Connection
from redis.asyncio import Redis

from runtime import ndf, private, store
from runtime.auth import verify_service
from runtime.config import RuntimeConfig
from runtime.datamodel import Schema
from runtime.errors import PrismaError
from runtime.ids import cuid
from runtime.management.context import ManagementContext
from runtime.management.schema import build_management_schema
from runtime.opencrud.executor import ServiceApi, execute, mutation_fields, plan, service_api
from runtime.opencrud.steps import Steps, drive_async
from runtime.quota import StorageLimitReached, StorageQuota, shrinks_only
from runtime.tenants import Tenant
from runtime.throttle import Throttle, Throttled, ThrottleRate
from runtime.throttle import header as throttled_by

log = logging.getLogger("runtime")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SERVICE_SUFFIXES = frozenset({"private", "import", "export", "_datamodel"})
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-headers", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
]
# The CLI's largest management document (introspection) has a few hundred tokens; datamodels
# travel in variables. The cap keeps a hostile document from costing seconds of parsing.
MAX_QUERY_TOKENS = 20_000
# Generated APIs kept per process (one per deployed service revision in use).
MAX_CACHED_APIS = 256
# How long another process's deploy or secret change may take to reach this one.
STATE_TTL_SECONDS = 1.0
# Data requests up to this size may run on the event loop; planning a bigger one (a mutation with
# thousands of nested rows) could hold the loop for milliseconds, so it goes to a worker thread.
LOOP_BODY_BYTES = 64 * 1024
INTERNAL_ERROR = (
    "Whoops. Looks like an internal server error. Search your server logs for request ID: {}"
)


class BodyTooLarge(Exception):
    pass


class RuntimeApp:
    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.request_prefix = os.environ.get("ENV", "local")  # request ids: `local:<cuid>`
        self.tenants: dict[str, Tenant] = {}
        self.management_schema = build_management_schema()
        # Sandbox servers: a throttle shared by every runtime process through Redis, and a
        # storage cap per service.
        self.redis: Redis | None = None
        self.throttles: dict[str, Throttle] = {}
        self.quotas: dict[str, StorageQuota] = {}
        self.apis: dict[tuple[str, str, int], ServiceApi] = {}
        self.states: dict[tuple[str, str], tuple[store.ServiceState | None, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for server in self.config.servers:
                        tenant = await asyncio.to_thread(Tenant.open, server)
                        self.tenants[server.name] = tenant
                        await tenant.open_loop_pool()
                    await self._open_sandboxes()
                except Exception as exc:
                    log.exception("runtime failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for tenant in self.tenants.values():
                    await tenant.close_loop_pool()
                    await asyncio.to_thread(tenant.close)
                if self.redis is not None:
                    await self.redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _open_sandboxes(self) -> None:
        sandboxes = [server for server in self.config.servers if server.sandbox is not None]
        if not sandboxes:
            return
        if not self.config.redis_url:
            raise ValueError("sandbox limits need `redisUrl`: the throttle lives in Redis")
        self.redis = Redis.from_url(self.config.redis_url)
        for server in sandboxes:
            assert server.sandbox is not None
            throttle = Throttle(
                self.redis,
                ThrottleRate.from_sandbox(server.sandbox),
                prefix=f"refract:throttle:{server.name}:",
            )
            await throttle.load()  # an unreachable Redis fails the start, not a request
            self.throttles[server.name] = throttle
            self.quotas[server.name] = StorageQuota.from_sandbox(server.sandbox)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = f"{self.request_prefix}:{cuid()}"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        path = scope["path"]
        server = self.config.server_for_host(headers.get("host", ""))
        if method == "OPTIONS":
            await _respond(send, 204, b"", "text/plain", request_id)
            return
        if server is None or server.name not in self.tenants:
            await _respond_json(send, 404, {"errors": [{"message": "Unknown host"}]}, request_id)
            return
        tenant = self.tenants[server.name]
        if method == "GET":
            if path.rstrip("/") == "/status":
                await _respond(send, 200, b"OK", "text/plain", request_id)
            else:
                page = b"<!doctype html><title>Refract runtime</title><p>Prisma server " + (
                    b"(Refract). Use the Prisma CLI or POST GraphQL requests to this endpoint.</p>"
                )
                await _respond(send, 200, page, "text/html; charset=utf-8", request_id)
            return
        if method != "POST":
            await _respond_json(
                send, 405, {"errors": [{"message": "HTTP method not allowed"}]}, request_id
            )
            return
        try:
            body = await _read_body(receive, server.limits.request_bytes)
        except BodyTooLarge:
            message = (
                f"The request body is larger than this server's limit of "
                f"{server.limits.request_bytes // (1024 * 1024)} MB."
            )
            await _respond_json(send, 413, {"errors": [{"message": message}]}, request_id)
            return
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            await _respond_json(
                send,
                400,
                {"errors": [{"message": "The request body is not valid JSON.", "code": 1001}]},
                request_id,
            )
            return
        authorization = headers.get("authorization")
        extra_headers: list[tuple[bytes, bytes]] = []
        throttle = self.throttles.get(server.name)
        route = service_route(path) if path.rstrip("/") != "/management" else None
        if throttle is not None and route is not None and route[2] in (None, "private"):
            # The data API and /private are throttled; management, import and export are not.
            try:
                delay_ms = await throttle.acquire(store.project_id(route[0], route[1]))
            except Throttled as exc:
                await _respond_json(
                    send, 200, exc.answer(request_id), request_id, [throttled_by(0)]
                )
                return
            extra_headers.append(throttled_by(delay_ms))
        try:
            on_loop = None
            if route is not None and route[2] is None and len(body) <= LOOP_BODY_BYTES:
                on_loop = self._loop_request(tenant, route, payload, authorization, request_id)
            if on_loop is not None:
                status, answer = await self._run_on_loop(tenant, on_loop)
            elif path.rstrip("/") == "/management":
                status, answer = await asyncio.to_thread(
                    self._management, tenant, payload, authorization, request_id
                )
            else:
                status, answer = await asyncio.to_thread(
                    self._service, tenant, path, payload, authorization, request_id
                )
        except Exception:
            # Failures outside resolvers (a database outage, say) reach Prisma's top-level
            # handler: HTTP 500 with the request id and no code.
            log.exception("request %s failed", request_id)
            status = 500
            answer = {
                "errors": [{"message": INTERNAL_ERROR.format(request_id), "requestId": request_id}]
            }
        await _respond_json(send, status, answer, request_id, extra_headers)

    # Management API -----------------------------------------------------------------------

    def _management(
        self, tenant: Tenant, payload: Any, authorization: str | None, request_id: str
    ) -> tuple[int, Any]:
        self.states.clear()  # deploys, deletions and new secrets apply at once in this process
        context = ManagementContext(tenant, authorization, request_id)
        if isinstance(payload, list):
            return 200, [self._execute_or_report(context, item)[1] for item in payload]
        return self._execute_or_report(context, payload)

    def _execute_or_report(self, context: ManagementContext, payload: Any) -> tuple[int, Any]:
        try:
            return 200, self._execute(context, payload)
        except GraphQLSyntaxError as exc:
            # Prisma answers unparseable GraphQL text from its top-level handler: HTTP 500.
            return 500, {"errors": [{"message": exc.message, "requestId": context.request_id}]}

    def _execute(self, context: ManagementContext, payload: Any) -> dict[str, Any]:
        """One GraphQL request; raises `GraphQLSyntaxError` for text that does not parse."""
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return {"errors": [{"message": "The request needs a GraphQL `query` string."}]}
        document = parse(payload["query"], max_tokens=MAX_QUERY_TOKENS)
        validation = validate(self.management_schema, document)
        if validation:
            return {
                "data": None,
                "errors": [_format_error(e, context.request_id) for e in validation],
            }
        variables = payload.get("variables")
        result = execute_sync(
            self.management_schema,
            document,
            variable_values=variables if isinstance(variables, dict) else None,
            operation_name=payload.get("operationName"),
            context_value=context,
        )
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [_format_error(e, context.request_id) for e in result.errors]
        return answer

    # Service endpoints --------------------------------------------------------------------

    def _service(
        self,
        tenant: Tenant,
        path: str,
        payload: Any,
        authorization: str | None,
        request_id: str,
    ) -> tuple[int, Any]:
        route = service_route(path)
        if route is None:
            return 404, {"errors": [{"message": f"No service endpoint at {path}"}]}
        name, stage, suffix = route
        pid = store.project_id(name, stage)
        with tenant.pool.connection() as conn, _autocommit(conn):
            state = self._state(conn, tenant, pid)
            if state is None:
                return 200, _error(3016, f"Project not found: '{pid}'", request_id)
            try:
                verify_service(state.secrets, authorization)
            except PrismaError as exc:
                return 200, _error(exc.code, exc.message, request_id)
            if suffix == "_datamodel":
                last = store.last_successful_migration(conn, tenant.management_schema, pid)
                return 200, last.datamodel if last else ""
            if suffix in ("import", "export", "private"):
                return self._bulk(conn, tenant, pid, suffix, payload, request_id)
            if state.revision is None:
                return 200, _error(3016, f"Project not found: '{pid}'", request_id)
            api = self._api(conn, tenant, pid, state.revision)
            return self._data(conn, tenant, pid, api, payload, request_id)

    def _loop_request(
        self,
        tenant: Tenant,
        route: tuple[str, str, str | None],
        payload: Any,
        authorization: str | None,
        request_id: str,
    ) -> LoopRequest | None:
        """A data request the event loop can run at once: the service's state and API and the
        document's plan are cached, the request is authorised and, on a sandbox, the storage
        cap's measure is fresh. None otherwise: the worker-thread path then answers, with every
        check and error in one place."""
        if tenant.loop_pool is None:
            return None
        pid = store.project_id(route[0], route[1])
        remembered = self._remembered_state(tenant, pid)
        if remembered is None:
            return None
        state = remembered[0]
        if state is None or state.revision is None:
            return None
        api = self.apis.get((tenant.config.name, pid, state.revision))
        if api is None:
            return None
        try:
            verify_service(state.secrets, authorization)
        except PrismaError:
            return None
        schema = tenant.service_schema(pid)
        steps = plan(api, schema, payload, request_id, cached_only=True)
        if steps is None:
            return None
        quota = self.quotas.get(tenant.config.name)
        roots = mutation_fields(api, payload) if quota is not None else []
        if quota is not None and roots and not shrinks_only(roots):
            usage = quota.cached_usage(schema)
            if usage is None or usage.over:
                steps.close()
                return None  # the thread path measures, or refuses with its message
        return LoopRequest(api, schema, payload, request_id, steps, roots, quota)

    async def _run_on_loop(self, tenant: Tenant, request: LoopRequest) -> tuple[int, RawJson]:
        """Drive a planned request on a connection of the loop's pool. A query that meets a
        dead connection (the database restarted) is planned again and retried once on a new
        one; a mutation is not, as it may have been applied."""
        pool = tenant.loop_pool
        assert pool is not None
        steps = request.steps
        for attempt in (1, 2):
            conn = await pool.get()
            try:
                status, body = await drive_async(steps, conn, pool.cursor(conn))
                break
            except psycopg.OperationalError:
                if not conn.broken or attempt == 2 or mutation_fields(request.api, request.payload):
                    raise
                log.warning("request %s: database connection lost; retrying", request.request_id)
                retried = plan(request.api, request.schema, request.payload, request.request_id)
                assert retried is not None
                steps = retried
            finally:
                pool.put(conn)
        if request.quota is not None and request.roots:
            body_bytes = len(json.dumps(request.payload))
            request.quota.record_mutation(request.schema, request.roots, body_bytes)
        return status, RawJson(body)

    def _state(self, conn: Connection, tenant: Tenant, pid: str) -> store.ServiceState | None:
        """A service's secrets and deployed revision, remembered for a second.

        Most requests then skip a round trip. This process forgets them whenever its management
        API runs; a deploy or new secrets through another process reach this one within
        STATE_TTL_SECONDS.
        """
        remembered = self._remembered_state(tenant, pid)
        if remembered is not None:
            return remembered[0]
        state = store.service_state(conn, tenant.management_schema, pid)
        if len(self.states) >= MAX_CACHED_APIS:
            self.states.clear()
        self.states[(tenant.config.name, pid)] = (state, time.monotonic())
        return state

    def _remembered_state(
        self, tenant: Tenant, pid: str
    ) -> tuple[store.ServiceState | None, float] | None:
        """The remembered state (None inside: no such service) while younger than the TTL."""
        remembered = self.states.get((tenant.config.name, pid))
        if remembered is None or time.monotonic() - remembered[1] >= STATE_TTL_SECONDS:
            return None
        return remembered

    def _api(self, conn: Connection, tenant: Tenant, pid: str, revision: int) -> ServiceApi:
        """The service's generated API for a deployed revision, built once per process.

        Keyed by revision, so a deploy through any runtime process is picked up by every other
        on its next request, while unchanged services cost no schema read at all.
        """
        key = (tenant.config.name, pid, revision)
        api = self.apis.get(key)
        if api is None:
            schema_json = store.migration_schema(conn, tenant.management_schema, pid, revision)
            api = service_api(schema_json)
            if len(self.apis) >= MAX_CACHED_APIS:
                self.apis.clear()
            self.apis[key] = api
        return api

    def _data(
        self,
        conn: Connection,
        tenant: Tenant,
        pid: str,
        api: ServiceApi,
        payload: Any,
        request_id: str,
    ) -> tuple[int, Any]:
        """The service's generated OpenCRUD API. On a sandbox, writes first pass the cap."""
        service_schema = tenant.service_schema(pid)
        quota = self.quotas.get(tenant.config.name)
        roots = mutation_fields(api, payload) if quota is not None else []
        if quota is not None and roots and not shrinks_only(roots):
            try:
                quota.check_write(conn, pid, service_schema)
            except StorageLimitReached as exc:
                return 200, _error(exc.code, exc.message, request_id)
        answer = execute(api, service_schema, payload, conn, request_id)
        if quota is not None and roots:
            quota.record_mutation(service_schema, roots, len(json.dumps(payload)))
        return answer.status, RawJson(answer.body)

    def _bulk(
        self, conn: Connection, tenant: Tenant, pid: str, suffix: str, payload: Any, request_id: str
    ) -> tuple[int, Any]:
        """Import, export and the private endpoint: bulk paths, never throttled. Imports are
        writes, so a sandbox service at its storage cap refuses them; exports still work."""
        last = store.last_successful_migration(conn, tenant.management_schema, pid)
        schema = Schema.from_json(last.schema if last else None)
        service_schema = tenant.service_schema(pid)
        quota = self.quotas.get(tenant.config.name)
        try:
            if suffix == "export":
                return 200, ndf.export_request(conn, service_schema, schema, payload)
            if suffix == "import":
                if quota is not None:
                    quota.check_write(conn, pid, service_schema)
                errors = ndf.import_request(conn, service_schema, schema, payload)
                if quota is not None:
                    quota.record_write(service_schema)
                return 200, errors
        except ndf.NdfError as exc:
            return 400, {"errors": [{"message": str(exc), "requestId": request_id}]}
        except StorageLimitReached as exc:
            return 200, _error(exc.code, exc.message, request_id)
        answer = private.execute(conn, service_schema, payload)
        if quota is not None:
            quota.forget(service_schema)  # resetData may have emptied it
        return 200, answer


@contextlib.contextmanager
def _autocommit(conn: Connection) -> Iterator[Connection]:
    """Service requests run in autocommit: a read is one round trip instead of three (no
    BEGIN and COMMIT around it); writes open their own transactions. The pooled connection
    goes back in its default mode for the management API."""
    conn.autocommit = True
    try:
        yield conn
    finally:
        if not conn.closed:
            conn.autocommit = False


@dataclass
class LoopRequest:
    """A data request planned for the event loop (see `RuntimeApp._loop_request`)."""

    api: ServiceApi
    schema: str
    payload: Any
    request_id: str
    steps: Steps[tuple[int, bytes]]
    roots: list[str]  # the mutation's root fields, on a sandbox (for its storage cap)
    quota: StorageQuota | None


class RawJson(bytes):
    """A body the data API already serialised (PostgreSQL built the JSON)."""


def service_route(path: str) -> tuple[str, str, str | None] | None:
    """(project name, stage, suffix) for a service path; missing parts default to `default`."""
    segments = [s for s in path.split("/") if s]
    suffix = None
    if segments and segments[-1] in SERVICE_SUFFIXES:
        suffix = segments.pop()
    if len(segments) > 3:
        return None
    if len(segments) == 3:
        workspace, service, stage = segments
        return f"{workspace}~{service}", stage, suffix
    service = segments[0] if segments else "default"
    stage = segments[1] if len(segments) > 1 else "default"
    return service, stage, suffix


def _error(code: int, message: str, request_id: str) -> dict[str, Any]:
    return {"errors": [{"message": message, "code": code, "requestId": request_id}]}


def _format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    formatted: dict[str, Any] = {"message": error.message}
    if error.locations:
        formatted["locations"] = [
            {"line": loc.line, "column": loc.column} for loc in error.locations
        ]
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


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    request_id: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"request-id", request_id.encode()),
                *CORS_HEADERS,
                *(extra_headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _respond_json(
    send: Send,
    status: int,
    payload: Any,
    request_id: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    if isinstance(payload, RawJson):
        body = bytes(payload)
    else:
        body = json.dumps(payload, separators=(",", ":")).encode()
    await _respond(send, status, body, "application/json", request_id, extra_headers)
