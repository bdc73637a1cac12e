"""A lean pool of autocommit asyncio connections for the data API on the event loop.

A query borrows a connection for one statement, so the checkout itself is on the hot path:
psycopg_pool's asyncio pool spends more CPU handing a connection over (locks, conditions,
`wait_for`) than psycopg spends sending the statement. Here a free connection is a `pop`, and a
request that must wait gets the next connection returned through a future. Connections are
opened on demand up to `max_size`. One that comes back broken, closed or inside a transaction
is dropped, and so are the idle ones (a broken connection usually means the database restarted,
and they would fail their next request too); a waiter gets a fresh connection in its place.

Each connection holds a slot (0 to `max_size` - 1), and a request names its service's schema:
of the idle connections it takes the first at or after its schema's slot, around the ring. A
service's statements then run on the same one or two connections, where they get prepared (see
`runtime.wire`); spread over every connection, a runtime with a thousand services would hold a
thousand texts on each and prepare none (PostgreSQL then parses and plans every request, which
costs it more than twice the run itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from runtime.wire import LoopConnection, LoopCursor

log = logging.getLogger("runtime")


MAX_PASSED = 4  # times in a row the oldest waiter may be passed over for one preferring a slot
WAITERS_SCANNED = 8  # waiters looked at for one preferring the returned connection's slot


class PoolTimeout(Exception):
    """No connection came free in time."""


class LoopPool:
    def __init__(self, conninfo: str, max_size: int, timeout: float = 30.0) -> None:
        if max_size < 1:
            raise ValueError("a pool needs at least one connection")
        self.conninfo = conninfo
        self.max_size = max_size
        self.timeout = timeout
        self.size = 0  # connections open or being opened
        self.idle: list[LoopConnection] = []
        self.slots: dict[LoopConnection, int] = {}
        self.free_slots = list(range(max_size - 1, -1, -1))
        self.cursors: dict[LoopConnection, LoopCursor] = {}
        # Requests waiting for a connection, with the slot they prefer (or -1).
        self.waiters: deque[tuple[asyncio.Future[LoopConnection], int]] = deque()
        self.passed = 0  # times the oldest waiter was passed over for a later one
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Open the first connection now, so a bad address fails the start, not a request."""
        self.put(await self._connect())

    async def get(self, affinity: str | None = None) -> LoopConnection:
        if self.closed:
            raise PoolTimeout("the pool is closed")
        if self.idle:
            return self._take(affinity)
        if self.size < self.max_size:
            return await self._connect()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[LoopConnection] = loop.create_future()
        self.waiters.append((waiter, -1 if affinity is None else self._slot_of(affinity)))
        timer = loop.call_later(self.timeout, _expire, waiter, self.timeout)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after a connection was handed over: give it to the next request.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.put(waiter.result())
            raise
        finally:
            timer.cancel()

    def get_nowait(self, affinity: str | None = None) -> LoopConnection | None:
        """An idle connection at once, or None (then `get` opens one or waits). With
        `affinity` (a schema), the idle connection nearest its slot."""
        if self.idle and not self.closed:
            return self._take(affinity)
        return None

    def _slot_of(self, affinity: str) -> int:
        return hash(affinity) % self.max_size

    def _take(self, affinity: str | None) -> LoopConnection:
        idle = self.idle
        if affinity is None or len(idle) == 1:
            return idle.pop()
        size = self.max_size
        want = self._slot_of(affinity)
        slots = self.slots
        best = 0
        best_distance = size
        for i, conn in enumerate(idle):
            distance = (slots[conn] - want) % size
            if distance < best_distance:
                best, best_distance = i, distance
                if not distance:
                    break
        conn = idle[best]
        idle[best] = idle[-1]
        idle.pop()
        return conn

    def cursor(self, conn: LoopConnection) -> LoopCursor:
        """The connection's own cursor, kept with it: making one per request costs more CPU
        than the statement's parameters."""
        cursor = self.cursors.get(conn)
        if cursor is None:
            cursor = self.cursors[conn] = LoopCursor(conn)
        return cursor

    def put(self, conn: LoopConnection) -> None:
        """Give a connection back; a connection no longer fit for reads is closed and replaced."""
        if self.closed or not conn.idle:
            self.discard(conn)
            return
        waiters = self.waiters
        while waiters and waiters[0][0].done():
            waiters.popleft()
        if not waiters:
            self.idle.append(conn)
            return
        # The oldest waiter, unless one of the next few prefers this connection's slot; the
        # oldest is passed over at most `MAX_PASSED` times in a row.
        pick = 0
        slot = self.slots[conn]
        if self.passed < MAX_PASSED and waiters[0][1] != slot:
            for i in range(1, min(len(waiters), WAITERS_SCANNED)):
                waiter, want = waiters[i]
                if want == slot and not waiter.done():
                    pick = i
                    break
        if pick:
            self.passed += 1
            waiter = waiters[pick][0]
            del waiters[pick]
        else:
            self.passed = 0
            waiter = waiters.popleft()[0]
        waiter.set_result(conn)

    def discard(self, conn: LoopConnection) -> None:
        """Close a borrowed connection instead of giving it back (a broken one, or one that a
        late cancel request may still reach); a waiting request gets a new one."""
        dropped = [conn]
        if conn.broken:
            dropped += self.idle
            self.idle = []
        for each in dropped:
            self.size -= 1
            self.cursors.pop(each, None)
            slot = self.slots.pop(each, None)
            if slot is not None:
                self.free_slots.append(slot)
            self._background(_close(each))
        # A replacement per dropped connection, for as many requests as wait.
        for _ in range(min(len(dropped), len(self.waiters)) if not self.closed else 0):
            self._background(self._replace())

    async def close(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, []
        self.cursors.clear()
        self.slots.clear()
        for conn in idle:
            await _close(conn)
        while self.waiters:
            waiter = self.waiters.popleft()[0]
            if not waiter.done():
                waiter.set_exception(PoolTimeout("the pool is closed"))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)  # a task only weakly referenced by the loop could vanish
        task.add_done_callback(self.tasks.discard)

    async def _connect(self) -> LoopConnection:
        self.size += 1
        slot = self.free_slots.pop()
        try:
            conn = await LoopConnection.connect(self.conninfo)
        except BaseException:
            self.size -= 1
            self.free_slots.append(slot)
            raise
        self.slots[conn] = slot
        return conn

    async def _replace(self) -> None:
        """Open a connection for a request waiting on one that was dropped, unless the room
        was taken first (`get` opens a connection itself when there is room) or no request
        waits any more."""
        if self.size >= self.max_size or not any(not w.done() for w, _ in self.waiters):
            return
        try:
            conn = await self._connect()
        except Exception as exc:
            log.warning("cannot reconnect to the database: %s", exc)
            while self.waiters:
                waiter = self.waiters.popleft()[0]
                if not waiter.done():
                    waiter.set_exception(exc)
                    return
            return
        self.put(conn)


def _expire(waiter: asyncio.Future[Any], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout(f"no database connection came free within {timeout:g} s"))


async def _close(conn: LoopConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
