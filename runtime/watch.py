"""Cancel a request's running statement when its client goes away.

A request that is still running after `WATCH_AFTER_SECONDS` (up to twice that) starts watching
its ASGI `receive` for `http.disconnect`. Quick requests, nearly all of them, never pay for a
watcher task or even a timer: one sweep per app, every `WATCH_AFTER_SECONDS` while requests are in
flight, starts the watchers of those it already saw at its previous sweep.

When the client is gone, the statement running on the request's connection is cancelled
through PostgreSQL's cancel protocol (psycopg's `cancel_safe`), again every second until the
request lets go of the connection: a query built to keep a backend busy for minutes stops within
moments of its client leaving. The statement then fails with `QueryCanceled`, as
it would at the statement timeout.

A cancel request can arrive late, after the statement it was aimed at ended; so a connection
whose client went away is closed instead of going back to its pool, where a late cancel could
hit another request's statement.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import Connection

from runtime.wire import LoopConnection

log = logging.getLogger("runtime")

WATCH_AFTER_SECONDS = 0.25
CANCEL_EVERY_SECONDS = 1.0


class ClientGone(Exception):
    """The client went away before the request took its connection."""


class ClientWatches:
    """The app's requests in flight, swept for those that run long enough to watch."""

    def __init__(self, every: float = WATCH_AFTER_SECONDS) -> None:
        self.every = every
        self.active: set[ClientWatch] = set()
        self._sweep: asyncio.TimerHandle | None = None

    def watch(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> ClientWatch:
        """A watch for a request from now until its `close`."""
        watch = ClientWatch(receive, self)
        self.active.add(watch)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(self.every, self._sweep_once)
        return watch

    def _sweep_once(self) -> None:
        for watch in self.active:
            if watch.seen:
                watch.start()
            watch.seen = True
        self._sweep = (
            asyncio.get_running_loop().call_later(self.every, self._sweep_once)
            if self.active
            else None
        )


class ClientWatch:
    def __init__(
        self, receive: Callable[[], Awaitable[dict[str, Any]]], watches: ClientWatches
    ) -> None:
        self._receive = receive
        self._watches = watches
        self._lock = threading.Lock()  # the worker threads attach their connections
        self._conn: Connection[Any] | LoopConnection | None = None
        self.gone = False
        self.seen = False  # by a sweep: at the next one, the request has run long enough
        self._task: asyncio.Task[None] | None = None

    def attach(self, conn: Connection[Any] | LoopConnection) -> None:
        """The connection now runs the request's statements (raises `ClientGone`)."""
        with self._lock:
            if self.gone:
                raise ClientGone
            self._conn = conn

    def detach(self) -> bool:
        """The request is done with its connection; True when the client went away, so the
        connection must be closed rather than reused."""
        with self._lock:
            self._conn = None
            return self.gone

    def close(self) -> None:
        self._watches.active.discard(self)
        if self._task is not None:
            self._task.cancel()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        with self._lock:
            self.gone = True
            conn = self._conn
        while conn is not None:
            try:
                if isinstance(conn, Connection):
                    await asyncio.to_thread(conn.cancel_safe, timeout=5)
                else:
                    await conn.cancel_safe(timeout=5)
            except Exception as exc:  # the request goes on; the statement timeout still holds
                log.warning("could not cancel the statement of a departed client: %s", exc)
            await asyncio.sleep(CANCEL_EVERY_SECONDS)
            with self._lock:
                conn = self._conn
