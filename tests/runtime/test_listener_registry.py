"""The registry of listened channels (`"Listener"`, `runtime.subscriptions.events`) keeps no row
of a session that has ended once a runtime starts: such a row would make every mutation of its
service notify nobody, and notifying commits run one at a time."""

from __future__ import annotations

import secrets
import time

import psycopg
from psycopg import sql

from runtime import store
from tests.runtime.conftest import Database


def rows(conn: psycopg.Connection, registry: sql.Identifier) -> list[tuple[str, int]]:
    query = sql.SQL('SELECT "channel", "backend" FROM {} ORDER BY 1').format(registry)
    return conn.execute(query).fetchall()


def test_a_starting_runtime_removes_the_rows_of_ended_sessions(database: Database) -> None:
    schema = f"management_{secrets.token_hex(4)}"
    registry = sql.Identifier(schema, "Listener")
    insert = sql.SQL('INSERT INTO {} ("channel", "backend") VALUES (%s, %s)').format(registry)
    with database.connect() as conn, database.connect() as listening:
        store.ensure_schema(conn, schema)
        alive = listening.info.backend_pid
        ended = psycopg.connect(database.conninfo(), autocommit=True)
        gone = ended.info.backend_pid
        ended.close()
        conn.execute(insert, ["refract_alive", alive])
        conn.execute(insert, ["refract_ended", gone])
        conn.execute(insert, ["refract_never", 0])  # no session has pid 0
        deadline = time.monotonic() + 10  # the closed session's backend may linger a moment
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [gone]).fetchone():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        store.ensure_schema(conn, schema)  # as a runtime process does when it starts
        assert rows(conn, registry) == [("refract_alive", alive)]
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
