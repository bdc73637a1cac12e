"""The operator API: the platform adds, replaces and removes servers while the runtime runs.

`/_operator/servers[/<name>]` on any host (a service name never starts with `_`), JSON in and
out, authenticated with an RS256 token signed by the platform (`aud: refract-operator`, `exp`
required; `runtime.auth.verify_operator`). The registry itself lives in the runtime's own
database (`runtime.registry`); this module keeps a process's view of it:

- every process polls the registry's version each second and reloads it when it moves, so an
  add, change or removal made through any process reaches all of them within about a second;
- a registered server's pools open on its first request and close when it has served nothing
  for `idleSeconds`, or when it is replaced or removed (after the requests using them end);
- a server whose database cannot be reached answers 503 with the reason, and is tried again on
  its next request; the other servers never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from runtime import envelope, registry
from runtime.auth import verify_operator
from runtime.config import OperatorConfig, ServerConfig
from runtime.directory import ServiceDirectory
from runtime.registry import EntryError, Registered
from runtime.tenants import Tenant

log = logging.getLogger("runtime")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PREFIX = "/_operator"
POLL_SECONDS = 1.0
# After a failed attempt to reach a server's database, its requests get the same answer at
# once for this long instead of each waiting for its own attempt (a blackholed address costs
# the connect timeout, 5 s).
RETRY_SECONDS = 2.0
MAX_BODY_BYTES = 1024 * 1024


def is_operator_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class ServerUnavailable(Exception):
    """A registered server's database cannot be reached now (answered with HTTP 503)."""


class Operator:
    def __init__(
        self, config: OperatorConfig, directory: ServiceDirectory, reserved_hosts: tuple[str, ...]
    ) -> None:
        self.config = config
        self.keys = registry.fernet(config.encryption_keys)
        self.directory = directory
        self.reserved_hosts = tuple(h for h in reserved_hosts if h != "*")
        self.home: Tenant | None = None  # the default server: its database holds the registry
        self.version = -1
        self.servers: dict[str, Registered] = {}
        self.hosts: dict[str, str] = {}  # host name -> server name
        self.tenants: dict[str, Tenant] = {}  # the registered servers whose pools are open
        self._opening: dict[str, asyncio.Lock] = {}
        self._failed: dict[str, tuple[float, str, str]] = {}  # name -> (when, stamp, message)
        self._refreshing = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unreadable: set[tuple[str, str]] = set()

    # Life cycle ---------------------------------------------------------------------------

    async def start(self, home: Tenant) -> None:
        self.home = home
        await asyncio.to_thread(self._with_home, registry.ensure_tables)
        await self.refresh()
        self._background(self._poll())
        self._background(self._reap())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for name in list(self.tenants):
            tenant = self.tenants.pop(name)
            await _close(tenant)

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _with_home(self, work: Callable[..., Any], *args: Any) -> Any:
        assert self.home is not None
        with self.home.pool.connection() as conn:
            return work(conn, self.home.management_schema, *args)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            try:
                if await self._version() != self.version:
                    await self.refresh()
            except Exception as exc:  # the database is down: keep serving what is known
                log.warning("cannot read the server registry: %s", exc)

    async def _version(self) -> int:
        """The registry's version, read on the event loop's pool (no worker thread, and none of
        the threads' few connections)."""
        assert self.home is not None
        pool = self.home.loop_pool
        if pool is None:
            return await asyncio.to_thread(self._with_home, registry.version)
        conn = await pool.get()
        try:
            cursor = pool.cursor(conn)
            await cursor.execute(registry.version_query(self.home.management_schema))
            row = await cursor.fetchone()
        finally:
            pool.put(conn)
        return int(row[0]) if row else 0

    async def _reap(self) -> None:
        """Close the pools of registered servers idle for `idleSeconds`."""
        idle = self.config.idle_seconds
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.25), 5.0))
            now = time.monotonic()
            for name, tenant in list(self.tenants.items()):
                if tenant.in_flight == 0 and now - tenant.last_used >= idle:
                    log.info("server %s idle for %gs: closing its connections", name, idle)
                    self._retire(name)

    async def refresh(self) -> None:
        """Read the registry again; servers replaced or removed lose their pools and caches."""
        async with self._refreshing:
            version, servers, unreadable = await asyncio.to_thread(
                self._with_home, registry.load, self.keys
            )
            for problem in set(unreadable) - self._unreadable:
                log.error("registered server %s is not served: %s", *problem)
            self._unreadable = set(unreadable)
            fresh = {s.config.name: s for s in servers}
            for name, old in self.servers.items():
                new = fresh.get(name)
                if new is None or new.stamp != old.stamp:
                    self._retire(name)
            self.servers = fresh
            self.hosts = {host: s.config.name for s in servers for host in s.config.hosts}
            self.version = version

    def _retire(self, name: str) -> None:
        """Forget a server's services and close its pools once its requests are done."""
        self.directory.forget_server(name)
        tenant = self.tenants.pop(name, None)
        if tenant is not None:
            self._background(self._close_when_done(tenant))

    async def _close_when_done(self, tenant: Tenant) -> None:
        while tenant.in_flight:
            await asyncio.sleep(0.05)
        await _close(tenant)
        if tenant.config.name not in self.tenants:
            # A request that ended meanwhile may have cached its services again.
            self.directory.forget_server(tenant.config.name)

    # Requests -----------------------------------------------------------------------------

    def server_for_host(self, hostname: str) -> ServerConfig | None:
        name = self.hosts.get(hostname)
        return self.servers[name].config if name is not None else None

    async def acquire(self, name: str) -> Tenant:
        """The server's tenant for one request, its pools opened if need be; `release` it."""
        tenant = self.tenants.get(name)
        if tenant is None:
            lock = self._opening.setdefault(name, asyncio.Lock())
            async with lock:
                tenant = self.tenants.get(name)
                if tenant is None:
                    tenant = await self._open(name)
        tenant.in_flight += 1
        tenant.last_used = time.monotonic()
        return tenant

    def release(self, tenant: Tenant) -> None:
        tenant.in_flight -= 1
        tenant.last_used = time.monotonic()

    async def _open(self, name: str) -> Tenant:
        registered = self.servers.get(name)
        if registered is None:
            raise ServerUnavailable("This server was removed.")
        failed = self._failed.get(name)
        if (
            failed is not None
            and failed[1] == registered.stamp
            and time.monotonic() - failed[0] < RETRY_SECONDS
        ):
            raise ServerUnavailable(failed[2])
        try:
            return await self._connect(name, registered)
        except ServerUnavailable as exc:
            self._failed[name] = (time.monotonic(), registered.stamp, str(exc))
            raise

    async def _connect(self, name: str, registered: Registered) -> Tenant:
        try:
            tenant = await asyncio.to_thread(Tenant.open, registered.config, create_database=False)
        except Exception as exc:  # psycopg's errors, the pool's timeout
            raise ServerUnavailable(_unavailable(exc)) from None
        try:
            await tenant.open_loop_pool()
        except Exception as exc:
            await _close(tenant)
            raise ServerUnavailable(_unavailable(exc)) from None
        if self.servers.get(name) is not registered:  # replaced or removed meanwhile
            await _close(tenant)
            raise ServerUnavailable("This server was just changed; try again.")
        tenant.last_used = time.monotonic()
        self.tenants[name] = tenant
        self._failed.pop(name, None)
        return tenant

    # The HTTP API -------------------------------------------------------------------------

    async def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        receive: Receive,
        send: Send,
        request_id: str,
    ) -> None:
        status, answer = await self._answer(method, path, headers, receive)
        await envelope.respond_json(send, status, answer, request_id, cors=False)

    async def _answer(
        self, method: str, path: str, headers: dict[str, str], receive: Receive
    ) -> tuple[int, dict[str, Any]]:
        body = await _read(receive)
        if body is None:
            return 413, {"error": f"the body is larger than {MAX_BODY_BYTES // 1024} KB"}
        try:
            verify_operator(self.config.public_keys, headers.get("authorization"))
        except PermissionError as exc:
            return 401, {"error": str(exc)}
        parts = [p for p in path.split("/") if p]
        if parts[:2] != ["_operator", "servers"] or len(parts) > 3:
            return 404, {"error": f"no operator endpoint at {path}"}
        if len(parts) == 2:
            if method != "GET":
                return 405, {"error": f"{method} is not allowed here (GET lists the servers)"}
            await self.refresh()
            return 200, {"servers": [self._entry(s) for s in self.servers.values()]}
        name = parts[2]
        if method == "GET":
            await self.refresh()
            found = self.servers.get(name)
            if found is None:
                return 404, {"error": f"no server named {name}"}
            return 200, self._entry(found)
        if method == "PUT":
            try:
                payload = json.loads(body)
            except ValueError:
                return 400, {"error": "the body is not valid JSON"}
            try:
                saved, created = await asyncio.to_thread(
                    self._with_home, registry.put, self.keys, name, payload, self.reserved_hosts
                )
            except EntryError as exc:
                return exc.status, exc.body()
            await self.refresh()
            return (201 if created else 200), self._entry(saved)
        if method == "DELETE":
            deleted = await asyncio.to_thread(self._with_home, registry.delete, name)
            await self.refresh()
            if not deleted:
                return 404, {"error": f"no server named {name}"}
            return 200, {"deleted": name}
        return 405, {"error": f"{method} is not allowed here (GET, PUT or DELETE)"}

    def _entry(self, server: Registered) -> dict[str, Any]:
        """The public entry, and whether this process has the server's pools open."""
        return {**server.entry, "open": server.config.name in self.tenants}


def _unavailable(exc: Exception) -> str:
    reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"This server's database cannot be reached: {reason or type(exc).__name__}"


async def _close(tenant: Tenant) -> None:
    with contextlib.suppress(Exception):
        await tenant.close_loop_pool()
    with contextlib.suppress(Exception):
        await asyncio.to_thread(tenant.close)


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
