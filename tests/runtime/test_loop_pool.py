"""The event loop's connection pool and the step drivers, on the session's real database."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest

from runtime.loop_pool import MAX_PASSED, LoopPool, PoolTimeout
from runtime.opencrud.steps import BEGIN, COMMIT, Sql, Steps, drive, drive_async
from runtime.wire import LoopConnection
from tests.runtime.conftest import Database

T = TypeVar("T")


def run(body: Callable[[], Awaitable[T]]) -> T:
    # A thread of its own: the browser tests' Playwright keeps an event loop running in this
    # one for the rest of the session, and asyncio.run() refuses to nest.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, body()).result()  # type: ignore[arg-type]


def backend_pid(conn: LoopConnection) -> int:
    return conn.info.backend_pid


def terminate(database: Database, pid: int) -> None:
    with database.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The backend exits asynchronously; wait until it is gone.
    deadline = time.monotonic() + 5
    with database.connect() as admin:
        while time.monotonic() < deadline:
            row = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
            if row is None:
                return
            time.sleep(0.02)


def test_a_returned_connection_goes_to_the_request_waiting_for_one(database: Database):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=1)
        await pool.open()
        first = await pool.get()
        waiting = asyncio.create_task(pool.get())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # the pool is at its size: no second connection
        pool.put(first)
        assert await asyncio.wait_for(waiting, 1) is first
        pool.put(first)
        assert pool.size == 1
        await pool.close()

    run(body)


def test_a_request_that_waits_too_long_gets_a_clear_error(database: Database):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=1, timeout=0.2)
        await pool.open()
        held = await pool.get()
        started = time.monotonic()
        with pytest.raises(PoolTimeout, match=r"within 0\.2 s"):
            await pool.get()
        assert 0.15 < time.monotonic() - started < 2
        pool.put(held)
        assert await pool.get() is held  # the expired waiter did not take it
        pool.put(held)
        await pool.close()

    run(body)


def test_a_broken_connection_is_replaced_and_the_idle_ones_dropped(database: Database):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=3)
        await pool.open()
        a, b, c = await pool.get(), await pool.get(), await pool.get()
        pool.put(b)
        pool.put(c)
        terminate(database, backend_pid(a))
        with pytest.raises(psycopg.OperationalError):
            await a.execute("SELECT 1")
        assert a.broken
        pool.put(a)
        assert pool.size == 0 and pool.idle == []  # likely all dead after a restart
        fresh = await pool.get()
        assert fresh not in (a, b, c)
        assert (await fresh.execute("SELECT 41 + 1")).rows == [(42,)]
        pool.put(fresh)
        await pool.close()

    run(body)


def test_a_waiter_gets_a_new_connection_when_the_one_it_waited_for_breaks(database: Database):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=1)
        await pool.open()
        only = await pool.get()
        waiting = asyncio.create_task(pool.get())
        await asyncio.sleep(0.05)
        terminate(database, backend_pid(only))
        with pytest.raises(psycopg.OperationalError):
            await only.execute("SELECT 1")
        pool.put(only)
        replacement = await asyncio.wait_for(waiting, 5)
        assert replacement is not only
        assert (await replacement.execute("SELECT 1")).rows == [(1,)]
        pool.put(replacement)
        await pool.close()

    run(body)


def test_the_pool_keeps_its_count_through_broken_connections_and_cancelled_requests(
    database: Database,
):
    """Twenty requests at a time on eight connections, while their backends are terminated
    and requests are cancelled: the pool never counts more connections than it may open (a
    dropped connection's replacement once raced a request opening one in the freed room, and
    the ninth had no slot: an IndexError answered as a 500), and every request keeps being
    served."""

    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=8, timeout=5)
        await pool.open()
        served = [0] * 20
        failures: list[BaseException] = []
        pids: set[int] = set()

        async def user(index: int) -> None:
            while True:
                conn = pool.get_nowait(f"s{index % 5}") or await pool.get(f"s{index % 5}")
                pids.add(backend_pid(conn))
                try:
                    await conn.execute("SELECT pg_sleep(%s)", [(0, 0.001, 0.005)[index % 3]])
                    served[index] += 1
                except psycopg.OperationalError:
                    pass  # its backend was terminated
                finally:
                    if index % 7 == 0 and served[index] % 5 == 0:
                        pool.discard(conn)  # as for a client gone mid-statement
                    else:
                        pool.put(conn)
                assert len(pool.free_slots) + pool.size == pool.max_size
                assert pool.size <= pool.max_size

        def started(index: int) -> asyncio.Task[None]:
            task = asyncio.create_task(user(index))
            task.add_done_callback(
                lambda t: t.cancelled() or t.exception() is None or failures.append(t.exception())  # type: ignore[arg-type]
            )
            return task

        tasks = [started(i) for i in range(20)]
        deadline = time.monotonic() + 4
        rounds = 0
        while time.monotonic() < deadline and not failures:
            await asyncio.sleep(0.05)
            rounds += 1
            tasks[rounds % 20].cancel()  # a request cancelled wherever it is
            tasks[rounds % 20] = started(rounds % 20)
            if rounds % 4 == 0 and pids:
                await asyncio.to_thread(terminate, database, pids.pop())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert not failures, failures[0]
        assert len(pool.free_slots) + pool.size == pool.max_size
        before = list(served)
        conn = await asyncio.wait_for(pool.get(), 5)  # still serving
        pool.put(conn)
        assert sum(before) > 200
        await pool.close()

    run(body)


def test_a_connection_left_in_a_transaction_is_not_reused(database: Database):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=2)
        await pool.open()
        conn = await pool.get()
        await conn.execute("BEGIN")
        pool.put(conn)
        assert pool.size == 0
        again = await pool.get()
        assert again is not conn
        pool.put(again)
        await pool.close()

    run(body)


def test_closing_the_pool_fails_the_waiters(database: Database):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=1)
        await pool.open()
        held = await pool.get()
        waiting = asyncio.create_task(pool.get())
        await asyncio.sleep(0.05)
        await pool.close()
        with pytest.raises(PoolTimeout, match="closed"):
            await waiting
        with pytest.raises(PoolTimeout, match="closed"):
            await pool.get()
        await held.close()

    run(body)


def affinities_by_slot(pool: LoopPool) -> dict[int, str]:
    """A schema-like name preferring each slot of the pool."""
    found: dict[int, str] = {}
    k = 0
    while len(found) < pool.max_size:
        name = f"s{k}$dev"
        found.setdefault(hash(name) % pool.max_size, name)
        k += 1
    return found


def test_a_service_gets_the_connection_of_its_slot_when_it_is_idle(database: Database):
    """Each service's statements run on the same connection while it is free (so they are
    prepared there, once), and on the nearest free one after it when it is not."""

    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=4)
        await pool.open()
        opened = [await pool.get() for _ in range(4)]
        for conn in opened:
            pool.put(conn)
        by_slot = affinities_by_slot(pool)
        conn_of = {pool.slots[c]: c for c in opened}
        for _ in range(3):
            for slot, name in by_slot.items():
                conn = pool.get_nowait(name)
                assert conn is conn_of[slot]
                pool.put(conn)
        held = pool.get_nowait(by_slot[1])
        assert held is conn_of[1]
        assert pool.get_nowait(by_slot[1]) is conn_of[2]  # the next slot around the ring
        pool.put(conn_of[2])
        pool.put(held)
        # Without an affinity, any idle connection; with only one idle, that one.
        taken = [pool.get_nowait() for _ in range(3)]
        assert pool.get_nowait(by_slot[0]) not in taken
        assert pool.get_nowait(by_slot[0]) is None
        await pool.close()
        for conn in opened:
            await conn.close()

    run(body)


def test_a_returned_connection_prefers_a_waiter_of_its_slot_without_starving_the_oldest(
    database: Database,
):
    async def body() -> None:
        pool = LoopPool(database.conninfo(), max_size=2)
        await pool.open()
        first, second = await pool.get(), await pool.get()
        by_slot = affinities_by_slot(pool)
        slot = pool.slots[first]
        other = by_slot[1 - slot]
        mine = by_slot[slot]
        oldest = asyncio.create_task(pool.get(other))
        await asyncio.sleep(0.01)
        later = [asyncio.create_task(pool.get(mine)) for _ in range(MAX_PASSED + 2)]
        await asyncio.sleep(0.05)
        served = []
        for _ in range(MAX_PASSED + 1):
            pool.put(first)
            await asyncio.sleep(0)
            done = [t for t in [oldest, *later] if t.done() and t not in served]
            assert len(done) == 1 and done[0].result() is first
            served += done
        # The first MAX_PASSED went to waiters of the connection's own slot; then the oldest.
        assert served[:MAX_PASSED] == later[:MAX_PASSED]
        assert served[MAX_PASSED] is oldest
        pool.put(first)
        pool.put(second)
        for task in later[MAX_PASSED:]:
            pool.put(await asyncio.wait_for(task, 1))
        assert sorted(len(x) for x in (pool.idle,)) == [2]
        await pool.close()

    run(body)


# The drivers ---------------------------------------------------------------------------------


def transfer(fail_after_begin: bool) -> Steps[list[Any]]:
    """A transaction that writes, meets a unique violation it handles, and reads back."""
    yield Sql("CREATE TEMPORARY TABLE IF NOT EXISTS drive_t (k int PRIMARY KEY)")
    yield BEGIN
    yield Sql("INSERT INTO drive_t VALUES (1)")
    if fail_after_begin:
        raise RuntimeError("a bug in the steps")
    try:
        yield Sql("INSERT INTO drive_t VALUES (1)")
    except psycopg.errors.UniqueViolation:
        yield Sql("ROLLBACK")
        rows = (yield Sql("SELECT count(*) FROM drive_t")).rows
        return ["refused", rows]
    yield COMMIT
    return ["committed"]


def test_both_drivers_throw_database_errors_into_the_steps(database: Database):
    with psycopg.connect(database.conninfo()) as conn:
        assert drive(transfer(False), conn, "public") == ["refused", [(0,)]]
        assert not conn.autocommit  # put back as the caller had it

    async def body() -> list[Any]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            return await drive_async(transfer(False), conn, "public")
        finally:
            await conn.close()

    assert run(body) == ["refused", [(0,)]]


def test_a_failure_inside_a_transaction_rolls_it_back(database: Database):
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        with pytest.raises(RuntimeError, match="a bug"):
            drive(transfer(True), conn, "public")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SELECT count(*) FROM drive_t").fetchone() == (0,)

    async def body() -> tuple[Any, Any]:
        conn = await LoopConnection.connect(database.conninfo())
        try:
            with pytest.raises(RuntimeError, match="a bug"):
                await drive_async(transfer(True), conn, "public")
            status = conn.info.transaction_status
            count = (await conn.execute("SELECT count(*) FROM drive_t")).rows[0]
            return status, count
        finally:
            await conn.close()

    assert run(body) == (psycopg.pq.TransactionStatus.IDLE, (0,))
