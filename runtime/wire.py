"""The event loop's statements on libpq directly: a lean asyncio driver for the data API.

psycopg's asyncio cursor runs each statement through layers of generators, waits and result
bookkeeping that cost about as much CPU as the rest of a small request put together. The
loop's connections need little of that: one statement or a short pipeline at a time, text
results, the same few statement texts again and again. `LoopConnection` keeps psycopg for what
it does once (connecting, cancelling, closing) and for its type adaptation
(`Transformer`: parameters dumped and rows loaded exactly as a psycopg cursor would), and talks
to libpq itself for the rest:

- the socket is watched by one reader for the connection's life, which reads what arrives and
  wakes the statement waiting for it: no reader added and removed per wait;
- `%s` placeholders become `$n` once per statement text (cached);
- a statement run again on a connection is prepared there (on its `PREPARE_AFTER`th run), so
  PostgreSQL skips its parse and plan. At most `PREPARED_MAX` are kept per connection; when
  full, the least recently used one makes room only if it is cold (unused for `COLD_AFTER`
  runs of the connection). Evicting the least recently used one whatever its age, as psycopg's
  cursor does, is the worst policy for many texts in turn (a runtime serving a thousand
  services): every run would prepare its text again and deallocate another. Here the prepared
  set holds still and the rest run unprepared;
- several statements can go as one pipeline (one round trip, one implicit Sync at the end):
  `executemany`, a `BEGIN` sent together with the statement that follows it, and a
  transaction's last statement with its `COMMIT`.

A statement that fails raises the psycopg exception for its SQLSTATE, as a cursor would. A lost
connection raises `psycopg.OperationalError` and leaves the connection `broken`. A statement
whose task is cancelled leaves the connection busy: its pool closes it instead of reusing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Collection, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, pq, sql
from psycopg.adapt import PyFormat, Transformer
from psycopg.errors import error_from_result
from psycopg.pq import ExecStatus, TransactionStatus

from runtime.names import bind_schema

PREPARE_AFTER = 2  # runs of one text on a connection before it is prepared (the second)
PREPARED_MAX = 512  # prepared statements kept per connection
COLD_AFTER = 4 * PREPARED_MAX  # runs of a connection after which an unused statement may go
SEEN_MAX = 2048  # texts counted per connection towards preparing
CONVERTED_MAX = 8192  # statement texts kept converted to `$n` form, per process

_PLACEHOLDER = re.compile(rb"%(.?)", re.S)
_converted: dict[tuple[str, str | None], tuple[bytes, int]] = {}


def convert(query: str, schema: str | None = None) -> tuple[bytes, int]:
    """`query` (psycopg's `%s` placeholders, `%%` for a percent sign) as libpq takes it, and
    the number of its parameters; with `schema`, bound to that service's schema first
    (`names.bind_schema`). Cached by the pair: a compiled statement and a service's schema are
    the same objects request after request, so the key is cheap to hash."""
    key = (query, schema)
    found = _converted.get(key)
    if found is not None:
        return found
    count = 0

    def number(match: re.Match[bytes]) -> bytes:
        nonlocal count
        if match.group(1) == b"%":
            return b"%"
        if match.group(1) != b"s":
            raise psycopg.ProgrammingError("only %s placeholders are supported on the loop")
        count += 1
        return b"$%d" % count

    raw = (bind_schema(query, schema) if schema is not None else query).encode()
    if b"%" in raw:
        raw = _PLACEHOLDER.sub(number, raw)
    if len(_converted) >= CONVERTED_MAX:
        _converted.clear()
    found = _converted[key] = (raw, count)
    return found


class Rows:
    """What a statement returned: its rows (loaded as a psycopg cursor loads them) and its
    row count (`-1` when the command reports none)."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount


class LoopConnection:
    """An autocommit connection of the event loop's pool (see the module's docstring)."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self._loop = asyncio.get_running_loop()
        self._tx = Transformer(conn)
        self._encoding = conn.info.encoding
        self._waiter: asyncio.Future[None] | None = None
        # (text, parameter types) -> statement name, least recently used first
        self._prepared: dict[tuple[bytes, Any], bytes] = {}
        self._used_at: dict[tuple[bytes, Any], int] = {}  # the run that last used each
        self._runs = 0  # statements run on this connection
        self._seen: dict[tuple[bytes, Any], int] = {}
        self._names = 0
        self._fd = self.pgconn.socket
        self._watching = True
        self._loop.add_reader(self._fd, self._readable)

    @classmethod
    async def connect(cls, conninfo: str) -> LoopConnection:
        conn = await AsyncConnection.connect(conninfo, autocommit=True)
        return cls(conn)

    # State ---------------------------------------------------------------------------------

    @property
    def info(self) -> psycopg.ConnectionInfo:
        return self.conn.info

    @property
    def broken(self) -> bool:
        return self.conn.broken

    @property
    def closed(self) -> bool:
        return self.conn.closed

    @property
    def idle(self) -> bool:
        """Connected, no statement running, no transaction open: fit for the next request."""
        pgconn = self.pgconn
        return (
            not self.conn.closed
            and pgconn.status == pq.ConnStatus.OK
            and pgconn.transaction_status == TransactionStatus.IDLE
            and not pgconn.pipeline_status
        )

    @property
    def transaction_status(self) -> TransactionStatus:
        return TransactionStatus(self.pgconn.transaction_status)

    async def cancel_safe(self, timeout: float = 30.0) -> None:
        await self.conn.cancel_safe(timeout=timeout)

    async def close(self) -> None:
        self._unwatch()
        await self.conn.close()

    # Statements ------------------------------------------------------------------------------

    async def execute(
        self,
        query: str | sql.Composable,
        params: Sequence[Any] = (),
        *,
        begin: bool = False,
        commit: bool = False,
        schema: str | None = None,
        before: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> Rows:
        """One statement with its parameters (for the service whose schema is `schema`, see
        `convert`); with `begin`, a `BEGIN` goes first in the same round trip (its transaction
        stays open); with `commit`, the transaction's `COMMIT` follows it in that round trip
        (skipped by PostgreSQL when the statement fails, leaving the transaction failed);
        `before`, statements (text and parameters) sent ahead of it in that round trip, whose
        results are dropped (the first failure raises, and PostgreSQL skips the rest)."""
        if not isinstance(query, str):
            query = query.as_string(self.conn)
        raw, count = convert(query, schema)
        values, types, formats = self._dump(params, count)
        key = (raw, types)
        name = self._prepared.get(key)
        if begin or commit or before or (name is None and self._prepare_due(key)):
            # Preparing, opening or ending the transaction ride in the same round trip.
            items = self._items(before, schema)
            items.append((raw, values, types, formats))
            return (await self._pipeline(items, begin=begin, commit=commit))[-1]
        pgconn = self.pgconn
        self._runs += 1
        if name is not None:
            self._use(key, name)
            pgconn.send_query_prepared(name, values, param_formats=formats)
        else:
            self._count(key)
            pgconn.send_query_params(raw, values, param_types=types, param_formats=formats)
        results = await self._exchange()
        return self._rows(results[-1])

    async def executemany(self, query: str, params_seq: Sequence[Sequence[Any]], *,
                          begin: bool = False, schema: str | None = None,
                          before: Sequence[tuple[str, Sequence[Any]]] = ()) -> Rows:  # fmt: skip
        """The statement once per parameter list, in one pipeline (one round trip, with
        `before` ahead of them as for `execute`); the row count is their sum."""
        raw, count = convert(query, schema)
        items = self._items(before, schema)
        items.extend((raw, *self._dump(params, count)) for params in params_seq)
        if not items:
            if begin:
                await self.simple(b"BEGIN")
            return Rows([], 0)
        done = await self._pipeline(items, begin=begin)
        return Rows([], sum(max(each.rowcount, 0) for each in done[len(before) :]))

    async def simple(self, query: bytes) -> Rows:
        """A simple query (several statements allowed, no parameters); the last one's rows."""
        self.pgconn.send_query(query)
        results = await self._exchange()
        return self._rows(results[-1]) if results else Rows([], -1)

    # libpq -----------------------------------------------------------------------------------

    def _items(
        self, statements: Sequence[tuple[str, Sequence[Any]]], schema: str | None
    ) -> list[tuple[bytes, Any, Any, Any]]:
        """Statements (text and parameters) as `_pipeline` takes them."""
        items = []
        for query, params in statements:
            raw, count = convert(query, schema)
            items.append((raw, *self._dump(params, count)))
        return items

    def _dump(self, params: Sequence[Any], count: int) -> tuple[Any, Any, Any]:
        if len(params) != count:
            raise psycopg.ProgrammingError(
                f"the query has {count} placeholders but {len(params)} parameters were passed"
            )
        if not count:
            return None, None, None
        tx = self._tx
        values = tx.dump_sequence(params, [PyFormat.AUTO] * count)
        return values, tx.types, tx.formats

    def _count(self, key: tuple[bytes, Any]) -> None:
        """Count a run of a text that is not prepared."""
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= SEEN_MAX:
                self._seen.pop(next(iter(self._seen)))
            seen = 0
        self._seen[key] = seen + 1

    def _prepare_due(
        self, key: tuple[bytes, Any], held: int | None = None, skip: Collection[Any] = ()
    ) -> bool:
        """Whether this run of an unprepared text should prepare it: its `PREPARE_AFTER`th run
        or later, with room for it (`held` statements kept, by default those prepared) or a
        cold statement to make room (the least recently used not in `skip`)."""
        if self._seen.get(key, 0) + 1 < PREPARE_AFTER:
            return False
        if (len(self._prepared) if held is None else held) < PREPARED_MAX:
            return True
        return self._victim(skip) is not None

    def _victim(self, skip: Collection[Any]) -> tuple[bytes, Any] | None:
        """The least recently used prepared statement (not in `skip`) if it is cold."""
        for key in self._prepared:
            if key not in skip:
                return key if self._runs - self._used_at[key] >= COLD_AFTER else None
        return None

    def _use(self, key: tuple[bytes, Any], name: bytes) -> None:
        """Mark a prepared statement used now (it moves to the recent end)."""
        del self._prepared[key]
        self._prepared[key] = name
        self._used_at[key] = self._runs

    async def _pipeline(self, items: list[tuple[bytes, Any, Any, Any]], *, begin: bool,
                        commit: bool = False) -> list[Rows]:  # fmt: skip
        """Statements sent together, ended by one Sync: one round trip. In a transaction
        (`begin`, or one already open) they share it; otherwise they run as one implicit
        transaction. A text due for preparing is prepared in the same round trip (and, when
        the connection holds `PREPARED_MAX` already, the oldest deallocated there too). The
        first failure raises (PostgreSQL skipped the rest)."""
        pgconn = self.pgconn
        sent: list[tuple[str, Any]] = []  # what each result answers, in order
        pgconn.enter_pipeline_mode()
        try:
            if begin:
                pgconn.send_query_params(b"BEGIN", None)
                sent.append(("begin", None))
            preparing: dict[tuple[bytes, Any], bytes] = {}
            evicted: set[tuple[bytes, Any]] = set()
            for raw, values, types, formats in items:
                key = (raw, types)
                self._runs += 1
                name = self._prepared.get(key) if key not in evicted else None
                if name is not None:
                    self._use(key, name)
                else:
                    name = preparing.get(key)
                held = len(self._prepared) - len(evicted) + len(preparing)
                if name is None and self._prepare_due(key, held, evicted):
                    if held >= PREPARED_MAX:
                        victim = self._victim(evicted)
                        assert victim is not None
                        evicted.add(victim)
                        pgconn.send_query_params(b"DEALLOCATE " + self._prepared[victim], None)
                        sent.append(("deallocate", victim))
                    self._names += 1
                    name = b"_rl%d" % self._names
                    pgconn.send_prepare(name, raw, param_types=types)
                    sent.append(("prepare", (key, name)))
                    preparing[key] = name
                elif name is None:
                    self._count(key)
                if name is not None:
                    pgconn.send_query_prepared(name, values, param_formats=formats)
                else:
                    pgconn.send_query_params(raw, values, param_types=types, param_formats=formats)
                sent.append(("statement", None))
            if commit:
                pgconn.send_query_params(b"COMMIT", None)
                sent.append(("commit", None))
            pgconn.pipeline_sync()
            if pgconn.flush():
                await self._flush()
            results: list[pq.abc.PGresult] = []
            while True:
                result = await self._next()
                if result is None:
                    continue  # the end of one command's results
                if result.status == ExecStatus.PIPELINE_SYNC:
                    break
                results.append(result)
        except BaseException:
            # Cancelled, or the connection failed: with results outstanding the connection
            # cannot leave pipeline mode, and `idle` then refuses it (the pool drops it). The
            # error that stopped the pipeline is what the caller gets: a failed exit raising
            # here once turned a cancel into an OperationalError the caller swallowed.
            if pgconn.status == pq.ConnStatus.OK and pgconn.pipeline_status:
                with contextlib.suppress(psycopg.OperationalError):
                    pgconn.exit_pipeline_mode()
            raise
        pgconn.exit_pipeline_mode()
        if len(results) != len(sent):
            raise psycopg.InternalError(f"expected {len(sent)} results, got {len(results)}")
        done = []
        failed = None
        for (kind, detail), result in zip(sent, results, strict=True):
            ok = result.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK)
            if result.status == ExecStatus.FATAL_ERROR and failed is None:
                failed = result
            if kind == "deallocate" and ok:
                del self._prepared[detail]
                del self._used_at[detail]
            elif kind == "prepare" and ok:  # a prepared statement outlives a failed transaction
                self._seen.pop(detail[0], None)
                self._prepared[detail[0]] = detail[1]
                self._used_at[detail[0]] = self._runs
            elif kind == "statement":
                done.append(result)
        if failed is not None:
            raise error_from_result(failed, encoding=self._encoding)
        return [self._rows(r) for r in done]

    async def _exchange(self) -> list[pq.abc.PGresult]:
        """Send what libpq holds and collect every result of the command; the first error
        raises (after the command has ended, so the connection is ready again)."""
        pgconn = self.pgconn
        if pgconn.flush():
            await self._flush()
        results = []
        while True:
            if pgconn.is_busy():
                await self._input()
                continue
            result = pgconn.get_result()
            if result is None:
                break
            results.append(result)
        for result in results:
            if result.status == ExecStatus.FATAL_ERROR:
                raise error_from_result(result, encoding=self._encoding)
        return results

    async def _next(self) -> pq.abc.PGresult | None:
        """The next result, waiting for the socket while libpq needs more input."""
        pgconn = self.pgconn
        while pgconn.is_busy():
            await self._input()
        return pgconn.get_result()

    def _input(self) -> asyncio.Future[None]:
        """A future the reader resolves once libpq has a whole result (or fails)."""
        if not self._watching:
            raise psycopg.OperationalError("the connection is closed")
        waiter = self._waiter = self._loop.create_future()
        return waiter

    async def _flush(self) -> None:
        pgconn = self.pgconn
        while pgconn.flush():  # 1: not everything fits the socket now
            writable = self._loop.create_future()
            self._loop.add_writer(self._fd, _wake, writable)
            try:
                await writable
            finally:
                self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        try:
            self.pgconn.consume_input()
        except psycopg.OperationalError as exc:
            self._unwatch()
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
            return
        if self.pgconn.notifies() is not None:  # never LISTENs; drop what arrives anyway
            while self.pgconn.notifies() is not None:
                pass
        waiter = self._waiter
        if waiter is not None and not self.pgconn.is_busy():
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _unwatch(self) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_reader(self._fd)

    def _rows(self, result: pq.abc.PGresult) -> Rows:
        if result.status != ExecStatus.TUPLES_OK:
            tuples = result.command_tuples
            return Rows([], tuples if tuples is not None else -1)
        tx = self._tx
        tx.set_pgresult(result)
        count = result.ntuples
        rows = tx.load_rows(0, count, tuple) if count else []
        return Rows(rows, count)


class LoopCursor:
    """A cursor-like face of a `LoopConnection` (`execute`, then `fetchone`/`fetchall`) for
    the loop's few statements written against a psycopg cursor."""

    def __init__(self, conn: LoopConnection) -> None:
        self.conn = conn
        self._rows: list[tuple[Any, ...]] = []

    async def execute(self, query: str | sql.Composable, params: Sequence[Any] = ()) -> LoopCursor:
        self._rows = (await self.conn.execute(query, params)).rows
        return self

    async def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
