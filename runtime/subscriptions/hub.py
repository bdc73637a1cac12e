"""The subscriptions of one runtime process and the events that reach them.

One `Listener` per server (its database) and process: a single connection that LISTENs on the
channels of the services this process has subscribers for (LISTEN when the first subscriber of
a service starts, UNLISTEN when the last one stops), whatever the number of subscribers. Each
channel it listens on is listed in the server's registry (the management schema's `"Listener"`,
a row per channel and session) while it does: mutations notify only the channels listed there
(`events`). A session that ended without removing its rows (a killed process, a restarted
database) leaves them behind, which costs only notifications nobody reads; a listener that
connects, and a runtime process that starts (`store.ensure_schema`), remove the rows of every
session that no longer exists. Its
reader task only puts notifications together (`events.Reassembler`) and queues them; a
dispatcher task takes each event to the matching subscriptions: in-memory filters first, then
one statement per group of subscriptions with the same document and variables (Prisma groups
them too), whose answer every subscriber of the group gets. A subscriber's messages go into its
session's bounded buffer (`Session.deliver`), which never waits: writers never wait on
subscribers, and the dispatcher never waits on a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.conninfo import make_conninfo

from runtime import store
from runtime.names import bind_schema, ident
from runtime.subscriptions.events import DELETED, Reassembler
from runtime.subscriptions.query import SubscriptionQuery, node_params
from runtime.tenants import Tenant

log = logging.getLogger("runtime")

# Event documents received and not yet dispatched, per listener; past it the oldest are
# dropped (and logged): the database's queue is not allowed to grow into this process's memory.
MAX_PENDING_EVENTS = 10_000
RECONNECT_SECONDS = 1.0


class Subscriber(Protocol):
    """The session side of a subscription (`runtime.subscriptions.session.Session`)."""

    def deliver(self, message: str) -> None: ...

    def failed(self, subscription_id: Any, message: str) -> None: ...


@dataclass(eq=False)
class Subscription:
    session: Subscriber
    id: Any  # the client's operation id (a string or a number)
    project_id: str
    channel: str
    schema_sql: str  # the service's schema, bound into the node statement
    query: SubscriptionQuery

    def message(self, data: str) -> str:
        return '{"id":' + json.dumps(self.id) + ',"payload":{"data":' + data + '},"type":"data"}'


class Listener:
    """The LISTEN connection of one server in this process, and its subscriptions."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.conninfo = make_conninfo(
            tenant.config.database.conninfo(), application_name="refract-runtime-listen"
        )
        self.channels: dict[str, set[Subscription]] = {}
        self.conn: AsyncConnection[Any] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.dispatcher: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()  # LISTEN, UNLISTEN and reconnecting, one at a time
        self.registry = sql.Identifier(tenant.config.database.management_schema, "Listener")
        self.pending: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.reassembler = Reassembler()
        self.closed = False
        self.tasks: set[asyncio.Task[Any]] = set()

    async def add(self, subscription: Subscription) -> None:
        """Start delivering the service's events to `subscription`: when this returns, every
        mutation of the service sent afterwards, through any process, reaches it."""
        async with self.lock:
            channel = subscription.channel
            subscribers = self.channels.get(channel)
            if subscribers is None:
                await self._command(lambda conn: self._listen(conn, channel))
                subscribers = self.channels[subscription.channel] = set()
            subscribers.add(subscription)
        if self.dispatcher is None or self.dispatcher.done():
            self.dispatcher = asyncio.get_running_loop().create_task(self._dispatch_forever())

    def remove(self, subscription: Subscription) -> None:
        subscribers = self.channels.get(subscription.channel)
        if subscribers is None or subscription not in subscribers:
            return
        subscribers.discard(subscription)
        if not subscribers:
            self._background(self._unlisten(subscription.channel))

    async def _unlisten(self, channel: str) -> None:
        async with self.lock:
            if self.channels.get(channel):  # a subscriber came back meanwhile
                return
            self.channels.pop(channel, None)
            with contextlib.suppress(psycopg.Error):
                await self._command(lambda conn: self._stop_listening(conn, channel))

    async def _command(
        self, action: Callable[[AsyncConnection[Any]], Awaitable[None]] | None
    ) -> None:
        """Run `action` on the connection, connected first if it is not (the lock held): the
        reader, which holds the connection while it waits for notifications, stops for it and
        starts again after."""
        await self._stop_reader()
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.conn = await self._connect()
        try:
            if action is not None:
                await action(self.conn)
        finally:
            self._start_reader()

    async def _connect(self) -> AsyncConnection[Any]:
        """A new connection listening on every channel that has subscribers, after the
        registry's rows of sessions that have ended are removed."""
        conn = await AsyncConnection.connect(self.conninfo, autocommit=True)
        try:
            await conn.execute(store.ended_listeners(self.tenant.config.database.management_schema))
            for channel in self.channels:
                await self._listen(conn, channel)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen(self, conn: AsyncConnection[Any], channel: str) -> None:
        """LISTEN, then list the channel in the registry: from then on mutations notify it."""
        await conn.execute(f"LISTEN {ident(channel)}")
        await conn.execute(
            sql.SQL(
                'INSERT INTO {} ("channel", "backend") VALUES (%s, pg_backend_pid()) '
                "ON CONFLICT DO NOTHING"
            ).format(self.registry),
            [channel],
        )

    async def _stop_listening(self, conn: AsyncConnection[Any], channel: str) -> None:
        await conn.execute(
            sql.SQL('DELETE FROM {} WHERE "channel" = %s AND "backend" = pg_backend_pid()').format(
                self.registry
            ),
            [channel],
        )
        await conn.execute(f"UNLISTEN {ident(channel)}")

    def _start_reader(self) -> None:
        if self.conn is not None and not self.closed:
            self.reader = asyncio.get_running_loop().create_task(self._read(self.conn))

    async def _stop_reader(self) -> None:
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(self, conn: AsyncConnection[Any]) -> None:
        try:
            async for notify in conn.notifies():
                document = self.reassembler.add(notify.payload)
                if document is None:
                    continue
                if self.pending.qsize() >= MAX_PENDING_EVENTS:
                    self.pending.get_nowait()
                    log.warning("subscriptions: an event dropped (%d waiting)", MAX_PENDING_EVENTS)
                self.pending.put_nowait((notify.channel, document))
        except psycopg.Error as exc:
            if self.closed:
                return
            log.warning("subscriptions: the LISTEN connection failed (%s); reconnecting", exc)
            self._background(self._reconnect())

    async def _reconnect(self) -> None:
        """After a lost connection (the database restarted): connect again and LISTEN on every
        channel that still has subscribers. Events committed meanwhile are lost."""
        while not self.closed:
            await asyncio.sleep(RECONNECT_SECONDS)
            async with self.lock:
                if not self.channels:
                    return
                with contextlib.suppress(psycopg.Error):
                    await self._command(None)
                    return

    async def _dispatch_forever(self) -> None:
        while True:
            channel, document = await self.pending.get()
            try:
                await self.dispatch(channel, document)
            except Exception:
                log.exception("subscriptions: an event could not be dispatched")

    async def dispatch(self, channel: str, document: dict[str, Any]) -> None:
        subscribers = list(self.channels.get(channel, ()))
        project_id = document.get("p")
        for event in document.get("e") or ():
            if not isinstance(event, dict):
                continue
            groups: dict[tuple[Any, ...], list[Subscription]] = {}
            for sub in subscribers:
                query = sub.query
                if sub.project_id != project_id or query.model.name != event.get("m"):
                    continue
                if query.matches(event):
                    groups.setdefault((sub.schema_sql, *query.group), []).append(sub)
            for group in groups.values():
                data = await self._answer(group[0], event)
                if data is None:
                    continue
                for sub in group:
                    if sub in self.channels.get(channel, ()):
                        sub.session.deliver(sub.message(data))

    async def _answer(self, sub: Subscription, event: dict[str, Any]) -> str | None:
        """The `data` of an event for a group of subscriptions, or None when the node does not
        pass their `node` filters (or is gone by now)."""
        query = sub.query
        if event["k"] == DELETED:
            return query.data(event, None)
        pool = self.tenant.loop_pool
        if pool is None:
            return None
        conn = await pool.get()
        try:
            cursor = pool.cursor(conn)
            await cursor.execute(
                bind_schema(query.node_sql, sub.schema_sql), node_params(query, event.get("id"))
            )
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            # The service changed under the subscription (a deploy, a deletion): it ends.
            log.info("subscriptions: a subscription's statement failed: %s", exc)
            for each in list(self.channels.get(sub.channel, ())):
                if each.query.group == query.group:
                    each.session.failed(each.id, "The subscription ended: its service changed.")
            return None
        finally:
            pool.put(conn)
        if row is None:
            return None
        node = None if row[0] is None else json.loads(row[0])
        return query.data(event, node)

    def _background(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        self.closed = True
        await self._stop_reader()
        for task in [self.dispatcher, *self.tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.conn is not None:
            with contextlib.suppress(Exception):
                if self.channels and not self.conn.broken:
                    await self.conn.execute(
                        sql.SQL('DELETE FROM {} WHERE "backend" = pg_backend_pid()').format(
                            self.registry
                        )
                    )
            with contextlib.suppress(Exception):
                await self.conn.close()
        self.channels.clear()

    def counts(self) -> dict[str, int]:
        return {
            "channels": len(self.channels),
            "subscriptions": sum(len(s) for s in self.channels.values()),
            "connections": int(self.conn is not None and not self.conn.closed),
            "tasks": len(self.tasks),
        }


class SubscriptionHub:
    """The listeners of this process, one per server that has had subscribers."""

    def __init__(self) -> None:
        self.listeners: dict[str, Listener] = {}

    def listener(self, tenant: Tenant) -> Listener:
        listener = self.listeners.get(tenant.config.name)
        if listener is None or listener.tenant is not tenant:
            if listener is not None:  # the server was replaced (operator API)
                asyncio.get_running_loop().create_task(listener.close())
            listener = self.listeners[tenant.config.name] = Listener(tenant)
        return listener

    async def close(self) -> None:
        for listener in self.listeners.values():
            await listener.close()
        self.listeners.clear()

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {"listeners": len(self.listeners)}
        for listener in self.listeners.values():
            for key, value in listener.counts().items():
                total[key] = total.get(key, 0) + value
        return total
