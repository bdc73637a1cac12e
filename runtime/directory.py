"""What one runtime process knows about the services it serves: the service directory.

The directory is the one owner of per-service state in a process. Two caches, both bounded:

- per service, keyed by (server, project id): its secrets and deployed revision, trusted for
  `state_ttl` seconds (a deploy or new secrets through another process reach this one within
  that time; this process's own management API forgets them at once), and the API of that
  revision;
- per datamodel, keyed by a digest of the deployed schema (its version): the generated API
  (`ServiceApi`: the GraphQL schema, parsed and validated documents, compiled statements).
  Nothing in it names a service: statements use the placeholder schema that the driver binds
  per request (`runtime.names`). So the thousands of services a sandbox holds, deployed from a
  few starter datamodels, share a few APIs, and a new service of a known datamodel starts warm.

A service's rows are only ever reached through `ServiceEntry.schema`, the PostgreSQL schema of
the service the entry was loaded for.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from psycopg import AsyncCursor, Connection

from runtime import heap, store
from runtime.config import API_CACHE_SIZE
from runtime.lru import Lru
from runtime.names import schema_sql
from runtime.opencrud.service import ServiceApi, schema_version, service_api
from runtime.tenants import Tenant

# How long another process's deploy or secret change may take to reach this one.
STATE_TTL_SECONDS = 1.0
# Services remembered per process (state and a reference to their API: a few hundred bytes).
MAX_SERVICES = 10_000
# Expired entries renewed together by one query on the event loop (see `revalidate`).
RENEW_BATCH = 500
# Generated APIs kept per process, one per distinct deployed datamodel in use (the runtime
# config's `apiCacheSize` sets it).
MAX_DATAMODELS = API_CACHE_SIZE


@functools.lru_cache(maxsize=64)
def _states_query(schema: str) -> str:
    """`store.service_states_query` as text, made once per management schema."""
    return store.service_states_query(schema).as_string(None)


@dataclass(eq=False)
class ServiceEntry:
    """One service as this process last read it. `state` is None for a service that does not
    exist; `api` is None until the service has a successful deploy. Nothing in it changes but
    `loaded_at`, moved forward when the state is read again and found unchanged (see
    `revalidate`)."""

    server: str
    project_id: str
    schema: str  # the PostgreSQL schema holding the service's tables
    schema_sql: str  # what compiled statements' placeholder schema becomes for this service
    state: store.ServiceState | None
    api: ServiceApi | None
    loaded_at: float


class ServiceDirectory:
    def __init__(
        self,
        *,
        state_ttl: float = STATE_TTL_SECONDS,
        services: int = MAX_SERVICES,
        datamodels: int = MAX_DATAMODELS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state_ttl = state_ttl
        self._services: Lru[ServiceEntry] = Lru(services, clock=clock)
        # Cached APIs are frozen out of the garbage collector's way (`runtime.heap`).
        self._apis: Lru[ServiceApi] = Lru(datamodels, on_drop=heap.dropped)
        heap.configure(datamodels)
        # Services a request used since their entry was last read: renewed together when one
        # of them expires (a set's add is atomic: the loop and the threads both add).
        self._used: set[tuple[str, str]] = set()
        self._forgotten = 0  # how many times `forget_server` ran

    def cached(self, tenant: Tenant, pid: str) -> ServiceEntry | None:
        """The service's entry while it can be trusted, without any I/O (the event loop's path)."""
        key = (tenant.config.name, pid)
        entry = self._services.lookup(key)
        if entry is None or self._services.clock() - entry.loaded_at >= self.state_ttl:
            return None
        self._used.add(key)
        return entry

    def load(self, conn: Connection, tenant: Tenant, pid: str) -> ServiceEntry:
        """The service's entry, read again when it is older than the TTL. The deployed schema is
        only read for a revision this process has not seen for the service."""
        fresh = self.cached(tenant, pid)
        if fresh is not None:
            return fresh
        key = (tenant.config.name, pid)
        previous = self._services.lookup(key)
        state = store.service_state(conn, tenant.management_schema, pid)
        api = None
        if state is not None and state.revision is not None:
            if (
                previous is not None
                and previous.state is not None
                and (previous.state.revision == state.revision)
            ):
                api = previous.api
            if api is None:
                api = self._api(
                    store.migration_schema(conn, tenant.management_schema, pid, state.revision)
                )
        schema = tenant.service_schema(pid)
        entry = ServiceEntry(
            server=tenant.config.name,
            project_id=pid,
            schema=schema,
            schema_sql=schema_sql(schema, api.version if api is not None else ""),
            state=state,
            api=api,
            loaded_at=self._services.clock(),
        )
        return self._services.remember(key, entry)

    def renewable(self, tenant: Tenant, pid: str) -> bool:
        """Whether `revalidate` could renew the service's entry (it has one with an API)."""
        entry = self._services.lookup((tenant.config.name, pid))
        return entry is not None and entry.api is not None and entry.state is not None

    async def revalidate(
        self, cursor: AsyncCursor[Any], tenant: Tenant, pid: str
    ) -> ServiceEntry | None:
        """Read an expired entry's state again on the event loop, keeping its API when the
        deployed revision is unchanged. None when there is nothing to keep (no entry, no API, a
        new revision, a deleted service): the worker threads then load the service as `load`
        does.

        A runtime serving many services meets expired entries all the time (each is trusted for
        a second only). Without this each would take a trip through a worker thread; with one
        query per service, a thousand services spread over a runtime would cost a second query
        per request. So the one query also renews every other entry of the server that a
        request used since it was read and that is expired or half way there (at most
        `RENEW_BATCH`): about one query per second for the server's busy services together."""
        server = tenant.config.name
        previous = self._services.lookup((server, pid))
        if previous is None or previous.api is None or previous.state is None:
            return None
        batch = {pid: previous, **self._expired_and_used(server, pid)}
        forgotten = self._forgotten
        await cursor.execute(_states_query(tenant.management_schema), [list(batch)])
        rows = {row[0]: row for row in await cursor.fetchall()}
        if self._forgotten != forgotten:
            return None  # this process's management API ran meanwhile: read what it wrote
        # Renewing is a comparison and an assignment per entry: a batch of hundreds runs
        # between two requests on the event loop, so it must not cost more than a request.
        renewed_at = self._services.clock()
        answer = None
        used = self._used
        for p, entry in batch.items():
            used.discard((server, p))
            row = rows.get(p)
            state = entry.state
            if row is None or state is None or row[2] != state.revision:
                continue  # left expired: its next request loads it again
            if row[1] != state.stored:  # new secrets for the same revision
                entry = self._services.remember(
                    (server, p), replace(entry, state=store.service_state_of(row[1:]))
                )
            entry.loaded_at = renewed_at
            if p == pid:
                answer = entry
        return answer

    def _expired_and_used(self, server: str, pid: str) -> dict[str, ServiceEntry]:
        """The server's other entries (with an API) that requests used since read, expired or
        past half their time to live. Renewing those early too keeps the busy entries in step:
        they expire together, about one query a second, where entries read at scattered times
        would each expire alone and cost a query of their own (a thousand services spread over
        a runtime cost one query for every two requests)."""
        now = self._services.clock()
        half = self.state_ttl / 2
        found: dict[str, ServiceEntry] = {}
        for key in list(self._used):
            if len(found) >= RENEW_BATCH:
                break
            if key[0] != server or key[1] == pid:
                continue
            entry = self._services.peek(key)
            if entry is None:
                self._used.discard(key)
            elif entry.api is not None and now - entry.loaded_at >= half:
                found[key[1]] = entry
        return found

    def forget(self, tenant: Tenant) -> None:
        """Forget the server's services (its management API ran: deploys, deletions and new
        secrets apply at once in this process)."""
        self.forget_server(tenant.config.name)

    def forget_server(self, name: str) -> None:
        """Forget every service of the server `name` (also when a registered server is replaced
        or removed: its next request reads its services again, from its new database)."""
        self._services.forget(lambda key: key[0] == name)  # type: ignore[index]
        self._used = {key for key in list(self._used) if key[0] != name}
        self._forgotten += 1

    def _api(self, schema_json: str) -> ServiceApi:
        """The API of a deployed schema, shared by every service deployed with it."""
        version = schema_version(schema_json)
        api = self._apis.lookup(version)
        if api is None:
            api = self._apis.remember(version, service_api(schema_json))
            heap.settle()
        return api
