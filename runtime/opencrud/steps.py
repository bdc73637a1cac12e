"""Database work as steps: the data API's logic yields statements, a driver runs them.

Queries and mutations are written as generators that yield `Sql` and receive a `Result` (or
have the database's exception thrown in at the `yield`), then return their answer. The logic
never touches a connection, so the same code runs on a pooled connection in a worker thread
(`drive`) and on an asyncio connection on the event loop (`drive_async`), and a request can be
checked and planned before any connection is taken.

The logic names tables in the placeholder schema (`runtime.names.SERVICE_SCHEMA`): the driver is
told which service's schema the steps run for and binds every statement to it, so the same
steps (and the statements compiled for them, shared by every service with that datamodel) can
only ever touch the tables of the service the request is for.

Drivers run statements on autocommit connections: a mutation opens its own transaction with
`BEGIN` and ends it with `COMMIT` or `ROLLBACK`. Should the logic fail in an unexpected way while
a transaction is open, the driver rolls it back before the error goes on. A statement marked
`commit` is followed by COMMIT in the same round trip: the last statement of a mutation (its
notification) costs no round trip of its own. The thread's driver binds its parameters as
literals (escaped by the connection) and sends both as one simple query; the loop's sends them
as one pipeline (`runtime.wire`).

A statement whose result the logic can tell in advance (the INSERT of a row whose id it made)
can say so (`Sql.assumed`): the logic goes on at once with that result, and the loop's driver
sends the statement in the round trip of the statement that follows, so a create answered with
its id costs one round trip, not two. The logic must be ready for the deferred statement's
failure at the following statement's yield (where the driver throws it in), and must follow it
with one (a mutation always ends with COMMIT or ROLLBACK); the thread's driver runs it at once.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

import psycopg
from psycopg import Connection, sql
from psycopg.pq import ExecStatus, TransactionStatus

from runtime.names import bind_schema
from runtime.wire import LoopConnection

T = TypeVar("T")


@dataclass
class Result:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rowcount: int = -1

    def one(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None


class Sql(NamedTuple):
    """One statement; with `many`, `params` is a sequence of parameter lists (executemany);
    with `commit`, the transaction's COMMIT follows it in the same round trip; with `assumed`,
    the result the logic goes on with before the statement has run (see the module's docstring;
    `%s` are its only placeholders). A tuple: every statement of every request is one, and a
    tuple is made in a fraction of a frozen dataclass's time."""

    query: str
    params: Sequence[Any] = ()
    many: bool = False
    commit: bool = False
    assumed: Result | None = None


Steps = Generator[Sql, Result, T]

BEGIN = Sql("BEGIN")
COMMIT = Sql("COMMIT")
ROLLBACK = Sql("ROLLBACK")


class OneStatement(Generic[T]):
    """Steps of one plain statement (no transaction) whose value is made from its result, as
    an object: the loop's driver runs the statement and makes the value without resuming a
    generator (`drive_async`), which costs as much again as the rest of a small read's steps.
    Anything else (another driver, a batch, a statement that fails) goes through `steps()`,
    the same steps as a generator, which this object stands for in the generator protocol."""

    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: Steps[T] | None = None

    def statement(self) -> Sql | None:
        """The statement, or None where the generator must answer (its parameters failed)."""
        raise NotImplementedError

    def value(self, result: Result) -> T:
        """The value, from the statement's result."""
        raise NotImplementedError

    def steps(self) -> Steps[T]:
        raise NotImplementedError

    def _generator(self) -> Steps[T]:
        if self._steps is None:
            self._steps = self.steps()
        return self._steps

    def __iter__(self) -> OneStatement[T]:
        return self

    def __next__(self) -> Sql:
        return self._generator().send(None)  # type: ignore[arg-type]

    def send(self, result: Result | None) -> Sql:
        return self._generator().send(result)  # type: ignore[arg-type]

    def throw(self, error: BaseException) -> Sql:
        return self._generator().throw(error)

    def close(self) -> None:
        if self._steps is not None:
            self._steps.close()


def answered(value: T) -> Steps[T]:
    """Steps that need no database: the value at once."""
    return value
    yield  # a generator all the same  # type: ignore[unreachable]


def drive(steps: Steps[T], conn: Connection[Any], schema: str) -> T:
    """Run `steps` for one service, on a synchronous connection (put in autocommit for the
    duration). `schema` is what the placeholder schema becomes (`names.schema_sql`)."""
    if not conn.autocommit:
        if conn.info.transaction_status != TransactionStatus.IDLE:
            conn.commit()  # the caller's reads so far; the steps manage their own transactions
        conn.autocommit = True
        try:
            return drive(steps, conn, schema)
        finally:
            if not conn.closed:
                conn.autocommit = False
    error: Exception | None = None
    result: Result | None = None  # a generator starts on None
    cursor = conn.cursor()
    try:
        while True:
            try:
                command = steps.throw(error) if error is not None else steps.send(result)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            error = None
            query = bind_schema(command.query, schema)
            try:
                if command.many:
                    cursor.executemany(query, command.params)  # type: ignore[arg-type]
                elif command.commit:
                    text = _then_commit(query, command.params, conn)
                    cursor.execute(text, prepare=False)
                else:
                    cursor.execute(query, command.params)  # type: ignore[arg-type]
                rows = cursor.fetchall() if _has_rows(cursor) else []
                result = Result(rows, cursor.rowcount)
            except psycopg.Error as exc:
                if conn.broken:
                    raise
                error = exc
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise
    finally:
        cursor.close()
        steps.close()


async def drive_async(steps: Steps[T], conn: LoopConnection, schema: str) -> T:
    """Run `steps` for one service (`schema` as for `drive`), on an event-loop connection
    (`runtime.wire`). A `BEGIN` is held back and sent with the statement that follows it: a
    mutation's first round trip opens its transaction and runs its first statement. So is a
    statement with an `assumed` result (see the module's docstring). `OneStatement` steps run
    without their generator while nothing fails."""
    if isinstance(steps, OneStatement):
        command = steps.statement()
        if command is not None:
            try:
                result = await conn.execute(command.query, command.params, schema=schema)
            except psycopg.Error as exc:
                if conn.broken:
                    raise
                return _failed(steps, exc)
            return steps.value(result)  # type: ignore[no-any-return]
    error: Exception | None = None
    result: Result | None = None  # a generator starts on None
    begin = False
    held: list[tuple[str, Sequence[Any]]] = []  # statements sent with the next one
    try:
        while True:
            try:
                command = steps.throw(error) if error is not None else steps.send(result)  # type: ignore[arg-type]
            except StopIteration as stop:
                if held:  # the logic broke the contract; the statements run all the same
                    await conn.execute(held[-1][0], held[-1][1], begin=begin,
                                       schema=schema, before=held[:-1])  # fmt: skip
                return stop.value  # type: ignore[no-any-return]
            error = None
            if command.query == "BEGIN" and not begin:
                begin = True
                result = Result([], -1)
                continue
            if command.assumed is not None and not command.many and not command.commit:
                held.append((command.query, command.params))
                result = command.assumed
                continue
            before, held = held, []
            try:
                if command.many:
                    done = await conn.executemany(
                        command.query, command.params, begin=begin, schema=schema, before=before
                    )
                else:
                    done = await conn.execute(
                        command.query,
                        command.params,
                        begin=begin,
                        commit=command.commit,
                        schema=schema,
                        before=before,
                    )
                result = Result(done.rows, done.rowcount)
            except psycopg.Error as exc:
                if conn.broken:
                    raise
                error = exc
            begin = False
    except BaseException:
        if not conn.closed and conn.transaction_status in _OPEN:
            await conn.simple(b"ROLLBACK")
        raise
    finally:
        steps.close()


_OPEN = (TransactionStatus.INTRANS, TransactionStatus.INERROR)


def _failed(steps: OneStatement[T], failure: psycopg.Error) -> T:
    """The value of one-statement steps whose statement failed (it ran already): what their
    generator makes of the failure, or the failure itself."""
    try:
        steps.send(None)
        steps.throw(failure)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        steps.close()
    raise psycopg.InternalError("one-statement steps went on after their statement")


def _then_commit(query: str, params: Sequence[Any], conn: Connection[Any]) -> bytes:
    """`query` with its parameters as literals (the connection's escaping) and then COMMIT: a
    simple query of two statements, one round trip. Without parameters psycopg sends it as it
    is (the simple protocol, which runs several statements), so a `%` a literal holds stays.
    Should the first statement fail, PostgreSQL skips the COMMIT and the transaction is left
    failed, which the caller's error handling rolls back as for any failed statement."""
    literals = tuple(sql.Literal(p).as_string(conn) for p in params)
    return (query % literals + "; COMMIT").encode()


def _has_rows(cursor: Any) -> bool:
    """Whether the last statement returned rows (cheaper than building `description`)."""
    return cursor.pgresult is not None and cursor.pgresult.status == ExecStatus.TUPLES_OK
