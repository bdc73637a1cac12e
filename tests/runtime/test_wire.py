"""The event loop's libpq driver (`runtime.wire`) against the session's real database: the
values it sends and the rows it loads are a psycopg cursor's, statements run often are
prepared, pipelines share one transaction, and failures leave the connection fit or refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from runtime import wire
from runtime.loop_pool import LoopPool
from runtime.wire import LoopConnection
from tests.runtime.conftest import Database, run_async

VALUES: list[Any] = [
    "plain",
    'it\'s "quoted" \\ and 100% ünïcode 🎉',
    "",
    0,
    -7,
    2**31,
    2**63 - 1,
    10**30,
    1.5,
    Decimal("12.3400"),
    True,
    False,
    None,
    dt.datetime(2026, 11, 30, 12, 30, 1, 500, tzinfo=dt.UTC),
    dt.date(2026, 1, 2),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    ["a", "b,c", None],
    [1, 2, 3],
    Jsonb({"k": [1, "two", None]}),
]


def test_values_go_and_come_back_as_a_psycopg_cursor_sends_and_loads_them(database: Database):
    statement = "SELECT x, pg_typeof(x)::text FROM (SELECT %s AS x) AS t"
    with psycopg.connect(database.conninfo(), autocommit=True) as reference:
        expected = [reference.execute(statement, [v]).fetchone() for v in VALUES]

    async def body() -> list[Any]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            # Past PREPARE_AFTER the same text runs as a prepared statement.
            return [(await conn.execute(statement, [v])).rows[0] for v in VALUES]
        finally:
            await conn.close()

    assert run_async(body()) == expected


def test_a_text_run_again_is_prepared_and_only_a_cold_one_makes_room(
    database: Database, monkeypatch
):
    monkeypatch.setattr(wire, "PREPARED_MAX", 2)
    monkeypatch.setattr(wire, "COLD_AFTER", 10)
    listed = "SELECT statement FROM pg_prepared_statements ORDER BY prepare_time"

    async def body() -> dict[str, list[str]]:
        conn = await LoopConnection.connect(database.conninfo())
        seen = {}

        async def prepared() -> list[str]:
            return [row[0] for row in (await conn.execute(listed)).rows]

        try:
            for n in range(wire.PREPARE_AFTER + 2):
                assert (await conn.execute("SELECT %s::int + 1", [n])).rows == [(n + 1,)]
            seen["first"] = await prepared()  # `listed` has run once: not prepared yet
            # `listed` is prepared on its next run: the connection holds two, both in use.
            seen["full"] = await prepared()
            # Texts run in turn while both are hot run unprepared: nothing is deallocated.
            for n in range(3):
                for k in (2, 3, 4):
                    assert (await conn.execute(f"SELECT %s::int + {k}", [n])).rows == [(n + k,)]
                assert (await conn.execute("SELECT %s::int + 1", [n])).rows == [(n + 1,)]
                await prepared()
            seen["hot"] = await prepared()
            # `+ 1` goes unused for COLD_AFTER runs: the next text due takes its place.
            for n in range(wire.COLD_AFTER):
                await conn.execute("SELECT %s::int + 5", [n])
                await prepared()
            seen["cold"] = await prepared()
            return seen
        finally:
            await conn.close()

    seen = run_async(body())
    assert seen["first"] == ["SELECT $1::int + 1"]
    assert seen["full"] == ["SELECT $1::int + 1", listed]
    assert seen["hot"] == seen["full"]
    assert seen["cold"] == [listed, "SELECT $1::int + 5"]


def test_a_failed_statement_raises_its_sqlstate_and_the_connection_goes_on(database: Database):
    async def body() -> list[Any]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            with pytest.raises(psycopg.errors.UndefinedTable):
                await conn.execute("SELECT * FROM no_such_table WHERE k = %s", [1])
            with pytest.raises(psycopg.errors.DivisionByZero):
                await conn.simple(b"SELECT 1; SELECT 1 / 0")
            assert conn.idle
            return (await conn.execute("SELECT %s", ["still here"])).rows
        finally:
            await conn.close()

    assert run_async(body()) == [("still here",)]


def test_a_begin_rides_with_the_next_statement_and_a_failure_leaves_the_transaction_to_roll_back(
    database: Database,
):
    async def body() -> tuple[Any, ...]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            await conn.simple(b"CREATE TEMPORARY TABLE wire_t (k int PRIMARY KEY)")
            done = await conn.execute("INSERT INTO wire_t VALUES (%s)", [1], begin=True)
            opened = conn.transaction_status
            with pytest.raises(psycopg.errors.UniqueViolation):
                await conn.executemany("INSERT INTO wire_t VALUES (%s)", [[2], [1], [3]])
            failed = conn.transaction_status
            await conn.simple(b"ROLLBACK")
            rows = (await conn.execute("SELECT count(*) FROM wire_t")).rows
            many = await conn.executemany("INSERT INTO wire_t VALUES (%s)", [[4], [5]], begin=True)
            await conn.simple(b"COMMIT")
            kept = (await conn.execute("SELECT k FROM wire_t ORDER BY k")).rows
            return done.rowcount, opened, failed, rows, many.rowcount, kept
        finally:
            await conn.close()

    rowcount, opened, failed, rows, many, kept = run_async(body())
    assert rowcount == 1
    assert opened == psycopg.pq.TransactionStatus.INTRANS
    assert failed == psycopg.pq.TransactionStatus.INERROR
    assert rows == [(0,)]  # the first insert was in the rolled-back transaction
    assert many == 2
    assert kept == [(4,), (5,)]


def test_a_pipeline_outside_a_transaction_is_one_implicit_transaction(database: Database):
    async def body() -> list[Any]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            await conn.simple(b"CREATE TEMPORARY TABLE wire_p (k int PRIMARY KEY)")
            with pytest.raises(psycopg.errors.UniqueViolation):
                await conn.executemany("INSERT INTO wire_p VALUES (%s)", [[1], [1]])
            assert conn.idle
            return (await conn.execute("SELECT count(*) FROM wire_p")).rows
        finally:
            await conn.close()

    assert run_async(body()) == [(0,)]


@pytest.mark.parametrize("how", ["alone", "while preparing", "with a begin"])
def test_a_cancelled_statement_leaves_the_connection_to_be_dropped(database: Database, how: str):
    """The cancel reaches the caller as a cancel wherever the statement is: in a pipeline
    (preparing its text, or opening a transaction) it once came out as an OperationalError
    ("cannot exit pipeline mode"), which a caller handling database errors swallowed, so the
    cancelled task went on running."""

    async def body() -> tuple[bool, int, list[Any]]:
        pool = LoopPool(database.conninfo(), max_size=1)
        await pool.open()
        conn = await pool.get()
        for _ in range(wire.PREPARE_AFTER - 1 if how == "while preparing" else 0):
            await conn.execute("SELECT pg_sleep(%s)", [0])
        statement = conn.execute("SELECT pg_sleep(%s)", [5], begin=how == "with a begin")
        task = asyncio.create_task(statement)
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        fit = conn.idle
        pool.put(conn)  # busy: closed, not reused
        size = pool.size
        fresh = await pool.get()
        rows = (await fresh.execute("SELECT 1")).rows
        pool.put(fresh)
        await pool.close()
        return fit, size, rows

    assert run_async(body()) == (False, 0, [(1,)])


def test_placeholders_must_match_the_parameters():
    assert wire.convert("SELECT %s, '100%%', %s") == (b"SELECT $1, '100%', $2", 2)
    with pytest.raises(psycopg.ProgrammingError):
        wire.convert("SELECT %(name)s")


def test_preparing_rides_with_the_statement_and_survives_its_failure(database: Database):
    async def body() -> tuple[Any, ...]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            await conn.simple(b"CREATE TEMPORARY TABLE wire_u (k int PRIMARY KEY)")
            insert = "INSERT INTO wire_u VALUES (%s)"
            for k in range(wire.PREPARE_AFTER - 1):
                await conn.execute(insert, [k])
            # The run that prepares the text fails (a duplicate): the statement stays prepared.
            with pytest.raises(psycopg.errors.UniqueViolation):
                await conn.execute(insert, [0])
            listed = (await conn.execute("SELECT count(*) FROM pg_prepared_statements")).rows
            again = await conn.execute(insert, [100])
            # A text that cannot be prepared raises its error at every run, and nothing sticks.
            for _ in range(wire.PREPARE_AFTER + 1):
                with pytest.raises(psycopg.errors.UndefinedTable):
                    await conn.execute("SELECT k FROM wire_missing WHERE k = %s", [1])
            many = await conn.executemany(insert, [[k] for k in range(200, 210)])
            total = (await conn.execute("SELECT count(*) FROM wire_u")).rows
            return listed, again.rowcount, many.rowcount, total, conn.idle
        finally:
            await conn.close()

    listed, again, many, total, idle = run_async(body())
    assert listed == [(1,)]
    assert again == 1
    assert many == 10
    assert total == [(wire.PREPARE_AFTER - 1 + 1 + 10,)]
    assert idle
