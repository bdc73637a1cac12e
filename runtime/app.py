"""The HTTP face of the runtime: a small ASGI application (reference section 0).

Routes: `GET /status`, `POST /management` (the management API), and the service endpoints
`/`, `/<service>`, `/<service>/<stage>`, `/<workspace>/<service>/<stage>` with the suffixes
`/private`, `/import`, `/export` and `/_datamodel`; a browser's `GET` on an endpoint gets the
playground, and `<endpoint>/_admin` the data browser (`runtime.playground`, whose files are under
`/_static/graphiql/`). The request's Host picks the tenant: the
config's server or one registered through the operator API (`/_operator/...` on any host,
`runtime.operator`).

Data requests whose documents are already compiled (clients send the same few documents with
new values) run on the event loop with an asyncio connection: planning them costs microseconds
and the loop awaits PostgreSQL. Everything else (a document seen for the first time,
introspection, large bodies, the management API, the bulk endpoints) is synchronous psycopg in a
worker thread. Both run the same steps (`runtime.opencrud.steps`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
import psycopg
from graphql import GraphQLSyntaxError, execute_sync, parse, validate
from psycopg import Connection
from redis.asyncio import Redis

from runtime import envelope, ndf, private, store
from runtime.auth import management_grants, verify_service
from runtime.config import RuntimeConfig, ServerConfig
from runtime.datamodel import Schema
from runtime.directory import ServiceDirectory, ServiceEntry
from runtime.envelope import RawJson
from runtime.errors import PrismaError
from runtime.ids import cuid
from runtime.management.context import ManagementContext
from runtime.management.schema import build_management_schema
from runtime.opencrud.executor import ServiceApi, execute, mutation_fields, plan, root_fields
from runtime.opencrud.limits import RequestLimits
from runtime.opencrud.steps import Steps, drive_async
from runtime.operator import Operator, ServerUnavailable, is_operator_path
from runtime.playground import Playground, is_asset_path
from runtime.quota import StorageGuard, StorageLimitReached
from runtime.sandbox import SandboxPolicy
from runtime.subscriptions.events import EventSink, channel_for, listeners_table
from runtime.subscriptions.hub import SubscriptionHub
from runtime.subscriptions.session import PROTOCOL, ServiceHandle, Session
from runtime.tenants import Tenant
from runtime.throttle import Throttled
from runtime.throttle import header as throttled_by
from runtime.usage import UsageRecorder, outcome, unknown_service
from runtime.usage import metrics as usage_metrics
from runtime.watch import ClientGone, ClientWatch, ClientWatches

log = logging.getLogger("runtime")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

SERVICE_SUFFIXES = frozenset({"private", "import", "export", "_datamodel"})
# The CLI's largest management document (introspection) has a few hundred tokens; datamodels
# travel in variables. The cap keeps a hostile document from costing seconds of parsing.
MAX_QUERY_TOKENS = 20_000
# Data requests up to this size may run on the event loop; planning a bigger one (a mutation with
# thousands of nested rows) could hold the loop for milliseconds, so it goes to a worker thread.
LOOP_BODY_BYTES = 64 * 1024
# A secured management API reads at most this much of a request without a token: the CLI's
# unauthenticated probes (`serverInfo`, `listProjects`) are a few dozen bytes, and a stranger
# must not make the server parse megabytes before it says no.
UNAUTHENTICATED_MANAGEMENT_BYTES = 4 * 1024
# A body over the limit is still read, and dropped, up to this size before the answer, so the
# client sees the 413 rather than a reset connection; a larger one is not waited for.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_PAUSE_SECONDS = 1.0
# Validating and running a management operation costs a millisecond or more, and validation
# grows with the square of a document's root fields; the CLI sends one operation with one root
# field at a time. Bounds on both keep one request's cost small, with a token or without.
MAX_MANAGEMENT_OPERATIONS = 10
MAX_MANAGEMENT_ROOT_FIELDS = 10
_LONG_NUMBER = re.compile(rb"(?:^|[:\[,])\s*-?[0-9]{20}")  # a number token of 20 digits or more


class BodyTooLarge(Exception):
    pass


class RuntimeApp:
    """Routing and dispatch. Per-service state lives in the service directory, sandbox limits in
    each sandbox server's policy, answers and errors in `runtime.envelope`."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.request_prefix = os.environ.get("ENV", "local")  # request ids: `local:<cuid>`
        self.tenants: dict[str, Tenant] = {}
        self.management_schema = build_management_schema()
        self.directory = ServiceDirectory(datamodels=config.api_cache_size)
        self.watches = ClientWatches()  # cancels the statements of clients that went away
        self.subscriptions = SubscriptionHub()  # websocket subscribers and their LISTEN
        # What each service served, per minute, shared through the runtime's own database.
        self.usage = UsageRecorder(config.usage, self._storage_sample)
        # Sandbox servers: a throttle shared by every runtime process through Redis, and a
        # storage cap per service.
        self.redis: Redis | None = None
        self.sandboxes: dict[str, SandboxPolicy] = {}
        self.exact_hosts = {
            host: server for server in config.servers for host in server.hosts if host != "*"
        }
        self.catch_all = next((s for s in config.servers if "*" in s.hosts), None)
        self.playground = Playground(config.playground_assets, config.console_url)
        # Servers registered at run time (`runtime.operator`), when the config enables it.
        self.operator = (
            Operator(config.operator, self.directory, tuple(self.exact_hosts))
            if config.operator is not None
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

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
                    await self.usage.start(self.tenants[self.config.servers[0].name])
                    if self.operator is not None:
                        await self.operator.start(self.tenants[self.config.servers[0].name])
                except Exception as exc:
                    log.exception("runtime failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.usage.stop()
                if self.operator is not None:
                    await self.operator.stop()
                for tenant in self.tenants.values():
                    await tenant.close_loop_pool()
                    await asyncio.to_thread(tenant.close)
                await self.subscriptions.close()
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
            shares = self.tenants[server.name].connection_shares()
            self.sandboxes[server.name] = await SandboxPolicy.open(self.redis, server, shares)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = f"{self.request_prefix}:{cuid()}"
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        path = scope["path"]
        if method == "GET" and is_asset_path(path):
            await self.playground.serve_asset(path, headers, send, request_id)
            return
        if is_operator_path(path):
            if self.operator is None:
                answer = {"error": "this runtime has no operator API (no `operator` in its config)"}
                await envelope.respond_json(send, 404, answer, request_id, cors=False)
            else:
                await self.operator.handle(method, path, headers, receive, send, request_id)
            return
        if method == "GET" and path == "/metrics" and self.config.usage.metrics_enabled:
            tenant = self.tenants[self.config.servers[0].name]
            await usage_metrics.serve(self.config.usage, tenant, headers, send, request_id)
            return
        is_management = path.rstrip("/") == "/management"
        cors = not is_management
        server = self._server_for_host(headers.get("host", ""))
        if method == "OPTIONS":
            await envelope.respond(send, 204, b"", "text/plain", request_id, cors=cors)
            return
        if server is None:
            await envelope.respond_json(
                send, 404, envelope.message_only("Unknown host"), request_id, cors=cors
            )
            return
        if method == "GET" and await self.playground.serve_page(
            scope, path, headers, send, request_id
        ):
            return
        tenant = self.tenants.get(server.name)
        if tenant is not None:
            await self._serve(tenant, method, path, headers, receive, send, request_id)
            return
        # A registered server: its pools open on its first request.
        assert self.operator is not None
        try:
            tenant = await self.operator.acquire(server.name)
        except ServerUnavailable as exc:
            if headers.get("content-length", "").isdigit() and (
                int(headers["content-length"]) <= UNAUTHENTICATED_MANAGEMENT_BYTES
            ):
                with contextlib.suppress(BodyTooLarge):
                    await _read_body(receive, UNAUTHENTICATED_MANAGEMENT_BYTES)
            answer = {"errors": [{"message": str(exc), "requestId": request_id}]}
            await envelope.respond_json(send, 503, answer, request_id, cors=cors)
            return
        try:
            await self._serve(tenant, method, path, headers, receive, send, request_id)
        finally:
            self.operator.release(tenant)

    def _server_for_host(self, host: str) -> ServerConfig | None:
        """The server a request's Host names: exact host names first (the config's servers',
        then the registered servers'), then the config's catch-all."""
        hostname = host.rsplit(":", 1)[0].lower() if host else ""
        server = self.exact_hosts.get(hostname)
        if server is None and self.operator is not None:
            server = self.operator.server_for_host(hostname)
        return server or self.catch_all

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Subscriptions on a service endpoint (`runtime.subscriptions`). Anything else, and a
        client that does not offer the `graphql-ws` subprotocol, is refused at the handshake
        (403), as Prisma refuses it."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope["path"]
        server = self._server_for_host(headers.get("host", ""))
        route = None if is_operator_path(path) else service_route(path)
        refused = (
            server is None
            or route is None
            or route[2] is not None
            or path.rstrip("/") in ("/management", "/status")
            or PROTOCOL not in scope.get("subprotocols", ())
        )
        if refused:
            await send({"type": "websocket.close", "code": 1008})
            return
        assert server is not None and route is not None
        tenant = self.tenants.get(server.name)
        registered = tenant is None
        if tenant is None:
            assert self.operator is not None
            try:
                tenant = await self.operator.acquire(server.name)
            except ServerUnavailable:
                await send({"type": "websocket.close", "code": 1011})
                return
        pid = store.project_id(route[0], route[1])
        handle = ServiceHandle(
            project_id=pid,
            load=lambda: self._subscription_service(tenant, pid),
            sink=self._event_sink(tenant, pid),
            listener=self.subscriptions.listener(tenant),
            sandbox=self.sandboxes.get(server.name),
            request_id=lambda: f"{self.request_prefix}:{cuid()}",
        )
        try:
            await Session(handle, receive, send, headers.get("authorization")).run()
        finally:
            if registered and self.operator is not None:
                self.operator.release(tenant)

    async def _subscription_service(self, tenant: Tenant, pid: str) -> ServiceEntry:
        cached = self.directory.cached(tenant, pid)
        if cached is not None:
            return cached

        def load() -> ServiceEntry:
            with tenant.pool.connection() as conn, _autocommit(conn):
                return self.directory.load(conn, tenant, pid)

        return await asyncio.to_thread(load)

    @staticmethod
    def _event_sink(tenant: Tenant, pid: str) -> EventSink:
        """Where the service's mutations publish their events (`runtime.subscriptions`)."""
        database = tenant.config.database
        return _event_sink(
            f"{database.host}:{database.port}/{database.database}", tenant.management_schema, pid
        )

    async def _serve(
        self,
        tenant: Tenant,
        method: str,
        path: str,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        request_id: str,
    ) -> None:
        server = tenant.config
        is_management = path.rstrip("/") == "/management"
        cors = not is_management
        if method == "GET":
            if path.rstrip("/") == "/status":
                await envelope.respond(send, 200, b"OK", "text/plain", request_id)
            else:
                page = b"<!doctype html><title>Refract runtime</title><p>Prisma server " + (
                    b"(Refract). Use the Prisma CLI or POST GraphQL requests to this endpoint.</p>"
                )
                await envelope.respond(
                    send, 200, page, "text/html; charset=utf-8", request_id, cors=cors
                )
            return
        if method != "POST":
            await envelope.respond_json(
                send, 405, envelope.message_only("HTTP method not allowed"), request_id, cors=cors
            )
            return
        body_limit = server.limits.request_bytes
        if is_management:
            refused = management_refusal(server, headers, request_id)
            if refused is not None:
                # A small body is read (never parsed) before answering: a connection closed
                # with unread data is reset, and the client could lose the answer. A large one
                # is not waited for.
                if headers.get("content-length", "").isdigit() and (
                    int(headers["content-length"]) <= UNAUTHENTICATED_MANAGEMENT_BYTES
                ):
                    with contextlib.suppress(BodyTooLarge):
                        await _read_body(receive, UNAUTHENTICATED_MANAGEMENT_BYTES)
                await envelope.respond_json(send, *refused, request_id, cors=False)
                return
            if not server.auth.is_open and not headers.get("authorization"):
                body_limit = min(body_limit, UNAUTHENTICATED_MANAGEMENT_BYTES)
        try:
            body = await _read_body(receive, body_limit)
        except BodyTooLarge:
            if body_limit < server.limits.request_bytes:  # a stranger's body is not waited for
                answer = envelope.error(3015, UNAUTHENTICATED_TOO_LARGE, request_id)
                await envelope.respond_json(send, 200, answer, request_id, cors=False)
                return
            # The rest is read and dropped first (bounded): a connection closed with unread
            # data is reset, and a client still sending could lose the answer.
            await _drain(receive, DRAIN_BYTES)
            message = (
                f"The request body is larger than this server's limit of "
                f"{server.limits.request_bytes // (1024 * 1024)} MB."
            )
            await envelope.respond_json(
                send, 413, envelope.message_only(message), request_id, cors=cors
            )
            return
        status, answer, extra_headers = await self._post(
            tenant, path, headers, body, request_id, receive
        )
        await envelope.respond_json(send, status, answer, request_id, extra_headers, cors=cors)

    async def fast_post(
        self, path: str, headers: list[tuple[bytes, bytes]], body: bytes, receive: Receive
    ) -> tuple[int, Any, list[tuple[bytes, bytes]], str] | None:
        """A service request whose whole (small) body the HTTP layer has read already
        (`runtime.http`): the status, answer, extra headers and request id, without ASGI's
        messages. None for anything else (the management API, other routes, unknown hosts,
        bodies over the server's limit): the request then goes the ASGI way."""
        if path.rstrip("/") == "/management" or is_operator_path(path):
            return None
        route = service_route(path)
        if route is None or route[2] is not None:
            return None
        host = b""
        authorization = None
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        server = self._server_for_host(host.decode("latin-1"))
        if server is None or len(body) > server.limits.request_bytes:
            return None
        request_id = f"{self.request_prefix}:{cuid()}"
        fields = {"authorization": authorization} if authorization is not None else {}
        tenant = self.tenants.get(server.name)
        if tenant is not None:
            status, answer, extra = await self._post(
                tenant, path, fields, body, request_id, receive, route
            )
            return status, answer, extra, request_id
        # A registered server: its pools open on its first request (as in `_http`).
        assert self.operator is not None
        try:
            tenant = await self.operator.acquire(server.name)
        except ServerUnavailable as exc:
            return 503, {"errors": [{"message": str(exc), "requestId": request_id}]}, [], request_id
        try:
            status, answer, extra = await self._post(
                tenant, path, fields, body, request_id, receive, route
            )
        finally:
            self.operator.release(tenant)
        return status, answer, extra, request_id

    async def _post(
        self,
        tenant: Tenant,
        path: str,
        headers: dict[str, str],
        body: bytes,
        request_id: str,
        receive: Receive,
        route: tuple[str, str, str | None] | None = None,
    ) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        """A POST to the management API or a service endpoint (`route`, when the caller has
        it), its body read: parsed, throttled on a sandbox, run (on the loop or a worker
        thread) and counted."""
        server = tenant.config
        is_management = route is None and path.rstrip("/") == "/management"
        extra_headers: list[tuple[bytes, bytes]] = []
        try:
            payload = parse_body(body)
        except ValueError:
            answer = {"errors": [{"message": "The request body is not valid JSON.", "code": 1001}]}
            return 400, answer, extra_headers
        authorization = headers.get("authorization")
        if route is None and not is_management:
            route = service_route(path)
        sandbox = self.sandboxes.get(server.name)
        delay_ms = 0
        if sandbox is not None and route is not None and route[2] in (None, "private"):
            # The data API and /private are throttled; management, import and export are not.
            # Each operation of a JSON array counts as a request.
            operations = len(payload) if isinstance(payload, list) else 1
            try:
                delay_ms = await sandbox.admit(store.project_id(route[0], route[1]), operations)
            except Throttled as exc:
                self._count(server, route, payload, 200, None, 0.0, 0, refused=True)
                return 200, exc.answer(request_id), [throttled_by(0)]
            extra_headers.append(throttled_by(delay_ms))
        started = time.perf_counter()
        watch = self.watches.watch(receive) if route is not None else None
        try:
            on_loop = None
            if (
                route is not None
                and route[2] is None
                and len(body) <= LOOP_BODY_BYTES
                and tenant.loop_pool is not None
            ):
                pid = store.project_id(route[0], route[1])
                service = self.directory.cached(tenant, pid)
                if service is None:
                    service = await self._service_on_loop(tenant, pid)
                if service is not None:
                    on_loop = self._loop_request(
                        tenant, service, payload, authorization, request_id
                    )
            if on_loop is not None and sandbox is None:
                status, answer = await self._run_on_loop(tenant, on_loop, watch)
            elif on_loop is not None:
                async with _share(sandbox, route, "loop"):
                    status, answer = await self._run_on_loop(tenant, on_loop, watch)
            elif is_management:
                status, answer = await asyncio.to_thread(
                    self._management, tenant, payload, authorization, request_id
                )
            else:
                async with _share(sandbox, route, "threads"):
                    status, answer = await asyncio.to_thread(
                        self._service, tenant, path, payload, authorization, request_id, watch
                    )
        except (psycopg.errors.QueryCanceled, ClientGone):
            status, answer = _canceled(server, watch, request_id)
        except Exception:
            # Failures outside resolvers (a database outage, say) reach Prisma's top-level
            # handler: HTTP 500 with the request id and no code.
            log.exception("request %s failed", request_id)
            status, answer = 500, envelope.internal_error(request_id)
        finally:
            if watch is not None:
                watch.close()
        if route is not None:
            latency = time.perf_counter() - started
            self._count(server, route, payload, status, answer, latency, delay_ms)
        return status, answer, extra_headers

    def _count(
        self,
        server: ServerConfig,
        route: tuple[str, str, str | None],
        payload: Any,
        status: int,
        answer: Any,
        latency: float,
        delay_ms: int,
        *,
        refused: bool = False,
    ) -> None:
        """Count a service request (`runtime.usage`): in memory, no I/O."""
        if not self.usage.enabled or unknown_service(answer):
            return
        data_api = route[2] is None
        error, storage_refused = (True, False) if refused else outcome(status, answer)
        self.usage.counter.request(
            server.name,
            store.project_id(route[0], route[1]),
            latency=latency,
            operations=len(payload) if data_api and isinstance(payload, list) else 1,
            error=error,
            delay_ms=delay_ms,
            refused=refused,
            storage_refused=storage_refused,
            payload=payload if data_api else None,
        )

    def _storage_sample(self, server: str, project_id: str) -> int | None:
        """The service's last storage measure on a sandbox (taken for its cap), if any."""
        sandbox = self.sandboxes.get(server)
        tenant = self.tenants.get(server)
        if sandbox is None or tenant is None:
            return None
        usage = sandbox.quota.last_usage(tenant.service_schema(project_id))
        return usage.used_bytes if usage is not None else None

    # Management API -----------------------------------------------------------------------

    def _management(
        self, tenant: Tenant, payload: Any, authorization: str | None, request_id: str
    ) -> tuple[int, Any]:
        self.directory.forget(tenant)  # deploys, deletions and new secrets apply at once here
        context = ManagementContext(tenant, authorization, request_id, self.usage)
        if isinstance(payload, list):
            if len(payload) > MAX_MANAGEMENT_OPERATIONS:
                message = (
                    f"This request holds {len(payload)} operations; the management API runs at "
                    f"most {MAX_MANAGEMENT_OPERATIONS} per request."
                )
                return 200, envelope.error(1001, message, request_id)
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
            return envelope.message_only("The request needs a GraphQL `query` string.")
        document = parse(payload["query"], max_tokens=MAX_QUERY_TOKENS)
        selected = max((r.count for r in root_fields(document).values()), default=0)
        if selected > MAX_MANAGEMENT_ROOT_FIELDS:
            message = (
                f"This operation selects {selected} root fields; the management API runs at "
                f"most {MAX_MANAGEMENT_ROOT_FIELDS} per operation."
            )
            return envelope.error(1001, message, context.request_id)
        validation = validate(self.management_schema, document)
        if validation:
            return {
                "data": None,
                "errors": [envelope.execution_error(e, context.request_id) for e in validation],
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
            answer["errors"] = [
                envelope.execution_error(e, context.request_id) for e in result.errors
            ]
        return answer

    # Service endpoints --------------------------------------------------------------------

    def _service(
        self,
        tenant: Tenant,
        path: str,
        payload: Any,
        authorization: str | None,
        request_id: str,
        watch: ClientWatch | None = None,
    ) -> tuple[int, Any]:
        route = service_route(path)
        if route is None:
            return 404, envelope.message_only(f"No service endpoint at {path}")
        name, stage, suffix = route
        pid = store.project_id(name, stage)
        with (
            tenant.pool.connection() as conn,
            _watched(conn, watch),
            _autocommit(conn),
            tenant.service_statements(conn),
        ):
            service = self.directory.load(conn, tenant, pid)
            if service.state is None:
                return 200, envelope.error(3016, f"Project not found: '{pid}'", request_id)
            try:
                verify_service(service.state.secrets, authorization)
            except PrismaError as exc:
                return 200, envelope.error(exc.code, exc.message, request_id)
            if suffix == "_datamodel":
                last = store.last_successful_migration(conn, tenant.management_schema, pid)
                return 200, last.datamodel if last else ""
            if suffix in ("import", "export", "private"):
                return self._bulk(conn, tenant, service, suffix, payload, request_id)
            if service.api is None:
                return 200, envelope.error(3016, f"Project not found: '{pid}'", request_id)
            return self._data(conn, tenant, service, service.api, payload, request_id)

    async def _service_on_loop(self, tenant: Tenant, pid: str) -> ServiceEntry | None:
        """The service's entry for the event loop's path: the cached one, or an expired one read
        again on a loop connection. None sends the request to the worker threads."""
        pool = tenant.loop_pool
        if pool is None:
            return None
        if not self.directory.renewable(tenant, pid):
            return self.directory.cached(tenant, pid)
        conn = await pool.get()
        try:
            return await self.directory.revalidate(pool.cursor(conn), tenant, pid)
        except psycopg.OperationalError:
            return None  # the thread path retries on a checked connection
        finally:
            pool.put(conn)

    def _loop_request(
        self,
        tenant: Tenant,
        service: ServiceEntry,
        payload: Any,
        authorization: str | None,
        request_id: str,
    ) -> LoopRequest | None:
        """A data request the event loop can run at once: the service's state and API and the
        document's plan are cached, the request is authorised and, on a sandbox, the storage
        cap's measure is fresh. None otherwise: the worker-thread path then answers, with every
        check and error in one place."""
        if service.state is None or service.api is None:
            return None
        try:
            verify_service(service.state.secrets, authorization)
        except PrismaError:
            return None
        sandbox = self.sandboxes.get(tenant.config.name)
        limits = self._limits(tenant, service, sandbox)
        sink = self._event_sink(tenant, service.project_id)
        steps = plan(service.api, payload, request_id, cached_only=True, limits=limits, sink=sink)
        if steps is None:
            return None
        roots = sandbox.writes(service.api, payload) if sandbox is not None else []
        if sandbox is not None and not sandbox.loop_may_write(service.schema, roots):
            steps.close()
            return None  # the thread path measures, or refuses with its message
        return LoopRequest(service, service.api, payload, request_id, steps, roots, sandbox, limits)

    async def _run_on_loop(
        self, tenant: Tenant, request: LoopRequest, watch: ClientWatch | None = None
    ) -> tuple[int, RawJson]:
        """Drive a planned request on a connection of the loop's pool. A query that meets a
        dead connection (the database restarted) is planned again and retried once on a new
        one; a mutation is not, as it may have been applied. A connection whose client went
        away is closed, not reused (see `runtime.watch`)."""
        pool = tenant.loop_pool
        assert pool is not None
        steps = request.steps
        service = request.service
        for attempt in (1, 2):
            conn = pool.get_nowait(service.schema) or await pool.get(service.schema)
            try:
                if watch is not None:
                    watch.attach(conn)
                status, body = await drive_async(steps, conn, service.schema_sql)
                break
            except psycopg.OperationalError:
                if not conn.broken or attempt == 2 or mutation_fields(request.api, request.payload):
                    raise
                log.warning("request %s: database connection lost; retrying", request.request_id)
                limits = request.limits and replace(request.limits, answered_bytes=0)
                retried = plan(request.api, request.payload, request.request_id, limits=limits)
                assert retried is not None
                steps = retried
            finally:
                if watch is not None and watch.detach():
                    pool.discard(conn)
                else:
                    pool.put(conn)
        if request.sandbox is not None:
            request.sandbox.wrote(service.schema, request.roots)
        return status, RawJson(body)

    def _limits(
        self, tenant: Tenant, service: ServiceEntry, sandbox: SandboxPolicy | None
    ) -> RequestLimits | None:
        """What a data request may cost: its answer's size and, on a sandbox, its storage and
        the root fields of each operation."""
        response_bytes = tenant.config.limits.response_bytes
        if sandbox is None and response_bytes is None:
            return None
        guard = sandbox.guard(service.project_id, service.schema) if sandbox else None
        root_fields = tenant.config.sandbox.root_fields if tenant.config.sandbox else None
        return RequestLimits(response_bytes, guard, root_fields)

    def _data(
        self,
        conn: Connection,
        tenant: Tenant,
        service: ServiceEntry,
        api: ServiceApi,
        payload: Any,
        request_id: str,
    ) -> tuple[int, Any]:
        """The service's generated OpenCRUD API. On a sandbox, writes first pass the cap."""
        sandbox = self.sandboxes.get(tenant.config.name)
        roots = sandbox.writes(api, payload) if sandbox is not None else []
        if sandbox is not None:
            try:
                sandbox.check_write(conn, service.project_id, service.schema, roots)
            except StorageLimitReached as exc:
                return 200, envelope.error(exc.code, exc.message, request_id)
        limits = self._limits(tenant, service, sandbox)
        sink = self._event_sink(tenant, service.project_id)
        answer = execute(api, service.schema, payload, conn, request_id, limits, sink)
        if sandbox is not None:
            sandbox.wrote(service.schema, roots)
        return answer.status, RawJson(answer.body)

    def _bulk(
        self,
        conn: Connection,
        tenant: Tenant,
        service: ServiceEntry,
        suffix: str,
        payload: Any,
        request_id: str,
    ) -> tuple[int, Any]:
        """Import, export and the private endpoint: bulk paths, never throttled. Imports are
        writes, so a sandbox service at its storage cap refuses them; exports still work."""
        pid = service.project_id
        last = store.last_successful_migration(conn, tenant.management_schema, pid)
        schema = Schema.from_json(last.schema if last else None)
        quota = sandbox.quota if (sandbox := self.sandboxes.get(tenant.config.name)) else None
        try:
            if suffix == "export":
                return 200, ndf.export_request(conn, service.schema, schema, payload)
            if suffix == "import":
                guard = None
                if quota is not None:
                    quota.check_write(conn, pid, service.schema)
                    guard = StorageGuard(quota, pid, service.schema).before_import_commit
                return 200, ndf.import_request(conn, service.schema, schema, payload, guard)
        except ndf.NdfError as exc:
            return 400, {"errors": [{"message": str(exc), "requestId": request_id}]}
        except StorageLimitReached as exc:
            return 200, envelope.error(exc.code, exc.message, request_id)
        answer = private.execute(conn, service.schema, payload)
        if quota is not None:
            quota.forget(service.schema)  # resetData may have emptied it
        return 200, answer


@functools.lru_cache(maxsize=4096)
def _event_sink(database: str, management_schema: str, pid: str) -> EventSink:
    """Every request of a service would hash the same channel name again (a mutation needs it,
    and planning on the loop takes it before knowing whether it is one)."""
    return EventSink(
        channel_for(database, management_schema, pid), pid, listeners_table(management_schema)
    )


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

    service: ServiceEntry
    api: ServiceApi
    payload: Any
    request_id: str
    steps: Steps[tuple[int, bytes]]
    roots: list[str]  # the mutation's root fields, on a sandbox (for its storage cap)
    sandbox: SandboxPolicy | None
    limits: RequestLimits | None = None


def _share(
    sandbox: SandboxPolicy | None, route: tuple[str, str, str | None] | None, path: str
) -> contextlib.AbstractAsyncContextManager[None]:
    """On a sandbox, one of the service's connection slots on `path` (see `SandboxPolicy`)."""
    if sandbox is None or route is None:
        return contextlib.nullcontext()
    return sandbox.connections(store.project_id(route[0], route[1]), path)


@contextlib.contextmanager
def _watched(conn: Connection, watch: ClientWatch | None) -> Iterator[Connection]:
    """A worker thread's connection, cancelled if the client goes away; closed then (the pool
    drops it) instead of going back to the pool."""
    if watch is None:
        yield conn
        return
    watch.attach(conn)
    try:
        yield conn
    finally:
        if watch.detach() and not conn.closed:
            conn.close()


TIMEOUT_MESSAGE = (  # Prisma's `TimeoutExceeded` (code 1000)
    "The query took too long to process. Either try again later or try a simpler query."
)


def _canceled(
    server: ServerConfig, watch: ClientWatch | None, request_id: str
) -> tuple[int, dict[str, Any]]:
    """A statement cancelled by the statement timeout, or because its client went away (then
    nobody reads the answer)."""
    if watch is not None and watch.gone:
        log.info("request %s: the client went away; its statement was cancelled", request_id)
        return 499, envelope.message_only("The client closed the connection.")
    message = TIMEOUT_MESSAGE
    if server.limits.statement_timeout_ms:
        message += (
            f" This server stops a statement after {server.limits.statement_timeout_ms / 1000:g} s."
        )
    return 200, envelope.error(1000, message, request_id)


UNAUTHENTICATED_TOO_LARGE = (
    "Authentication token is invalid: 'Authorization' header not provided (without a token, "
    f"this server reads at most {UNAUTHENTICATED_MANAGEMENT_BYTES // 1024} KB of a request)"
)
NOT_JSON = (
    "The management API accepts only JSON: send the request with `Content-Type: application/json`."
)


def management_refusal(
    server: ServerConfig, headers: dict[str, str], request_id: str
) -> tuple[int, dict[str, Any]] | None:
    """What a management request is refused with before its body is read, or None.

    - A body that is not declared JSON: a web page can send a form or `text/plain` to any
      address without asking (a CORS "simple request"), but not `application/json`.
    - A token that does not verify (signature, expiry, claims), answered as Prisma answers a
      bad token, before the server spends anything on the body. Which services the token's
      grants cover is checked per operation, as Prisma does.
    """
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        return 415, envelope.error(1001, NOT_JSON, request_id)
    authorization = headers.get("authorization")
    if authorization and not server.auth.is_open:
        try:
            management_grants(server.auth, authorization)
        except PrismaError as exc:
            return 200, envelope.error(exc.code, exc.message, request_id)
    return None


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


def parse_body(body: bytes) -> Any:
    """A request body's JSON (an empty body is null). orjson parses nearly every body (about
    ten times faster than the standard library); what it refuses (`NaN`, lone surrogates, a
    number out of range) is left to `json`, which accepts or refuses it as before, and so is
    a body with a number of 20 digits or more (orjson reads an integer past 64 bits as a
    float; a string of digits, such as an id, is no number). Such a number can only have
    become a float, and request bodies seldom hold floats, so the body's text is searched for
    one only then (scanning every body cost more than parsing it)."""
    if not body:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)
    if _has_float(parsed) and _LONG_NUMBER.search(body):
        return json.loads(body)
    return parsed


def _has_float(value: Any) -> bool:
    """Whether parsed JSON holds a float anywhere."""
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return kind is float
    for item in value:
        kind = type(item)
        if kind is float or ((kind is dict or kind is list) and _has_float(item)):
            return True
    return False


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop what is left of a refused body, up to `limit` bytes and while it keeps
    coming (a client that stops sending is not waited for)."""
    size = 0
    while size <= limit:
        try:
            message = await asyncio.wait_for(receive(), DRAIN_PAUSE_SECONDS)
        except TimeoutError:
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            return


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
