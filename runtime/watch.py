"""Cancel a request's running statement when its client goes away.

A request that is still running after `WATCH_AFTER_SECONDS` starts watching its ASGI `receive`
for `http.disconnect` (quick requests, nearly all of them, never pay for a watcher task: only a
timer). When the client is gone, the statement running on the request's connection is
cancelled through PostgreSQL's cancel protocol (psycopg's `cancel_safe`), again every second
until the request lets go of the connection: a query built to keep a backend busy for minutes
stops within moments of its client leaving. The statement then fails with `QueryCanceled`, as
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

from psycopg import AsyncConnection, Connection

log = logging.getLogger("runtime")

WATCH_AFTER_SECONDS = 0.25
CANCEL_EVERY_SECONDS = 1.0


class ClientGone(Exception):
    """The client went away before the request took its connection."""


class ClientWatch:
    def __init__(
        self, receive: Callable[[], Awaitable[dict[str, Any]]], delay: float = WATCH_AFTER_SECONDS
    ) -> None:
        self._receive = receive
        self._lock = threading.Lock()  # the worker threads attach their connections
        self._conn: Connection[Any] | AsyncConnection[Any] | None = None
        self.gone = False
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(delay, self._start)

    def attach(self, conn: Connection[Any] | AsyncConnection[Any]) -> None:
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
        self._timer.cancel()
        if self._task is not None:
            self._task.cancel()

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        with self._lock:
            self.gone = True
            conn = self._conn
        while conn is not None:
            try:
                if isinstance(conn, AsyncConnection):
                    await conn.cancel_safe(timeout=5)
                else:
                    await asyncio.to_thread(conn.cancel_safe, timeout=5)
            except Exception as exc:  # the request goes on; the statement timeout still holds
                log.warning("could not cancel the statement of a departed client: %s", exc)
            await asyncio.sleep(CANCEL_EVERY_SECONDS)
            with self._lock:
                conn = self._conn
