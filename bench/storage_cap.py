"""What the storage cap's check costs a mutation.

Runs a `createUser`-shaped transaction (BEGIN, INSERT, read back, COMMIT) on a service schema
in three ways and prints the median time of each:

- no check (a server without `sandbox`);
- the guard's common case: the write's bound fits the service's known room, so the check is
  `StorageQuota.reserve` in Python, no query;
- the in-transaction measure (a service near its cap, or an amplifying write): the files query
  before COMMIT, for a service of 1 table and of 20 tables;
- and the live-rows scan, which only a service whose files reached the cap pays, at 1, 10 and
  50 MB of rows.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/storage_cap.py

A fresh database `refract_bench_<random>` is created on that server and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.names import schema_sql
from runtime.opencrud.steps import drive
from runtime.quota import StorageQuota, measure_steps, measure_usage

ROUNDS = 2000


def median_us(work: Callable[[], None], rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def make_schema(conn: psycopg.Connection, schema: str, tables: int) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for i in range(tables):
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id varchar(25) PRIMARY KEY, name text NOT NULL, "
                'text text, "createdAt" timestamp(3), "updatedAt" timestamp(3))'
            ).format(sql.Identifier(schema, "User" if i == 0 else f"T{i}"))
        )


def main() -> None:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"refract_bench_{secrets.token_hex(4)}"
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(make_conninfo(url, dbname=name), autocommit=True) as conn:
            run(conn)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def run(conn: psycopg.Connection) -> None:
    one, twenty = "ws~one$dev", "ws~twenty$dev"
    make_schema(conn, one, 1)
    make_schema(conn, twenty, 20)
    quota = StorageQuota(100 * 1024 * 1024, max_age=3600)
    # Without waiting for the WAL flush at COMMIT, which would dominate every figure here.
    conn.execute("SET synchronous_commit = off")

    def create(schema: str, check: Callable[[], None] | None = None) -> Callable[[], None]:
        insert = sql.SQL(
            'INSERT INTO {} (id, name, "createdAt", "updatedAt") VALUES (%s, %s, now(), now()) '
            "RETURNING id"
        ).format(sql.Identifier(schema, "User"))
        read = sql.SQL(
            "SELECT json_build_object('id', id, 'name', name)::text FROM {} WHERE id = %s"
        ).format(sql.Identifier(schema, "User"))

        def work() -> None:
            conn.execute("BEGIN")
            node = conn.execute(insert, [secrets.token_hex(12), "Ada"]).fetchone()[0]
            conn.execute(read, [node]).fetchone()
            if check is not None:
                check()
            conn.execute("COMMIT")

        return work

    quota.usage(conn, one)
    print(f"createUser transaction, median of {ROUNDS} (µs):")
    plain = median_us(create(one))
    print(f"  no check:                                   {plain:8.0f}")
    reserved = median_us(create(one, lambda: quota.reserve(one, 40_000) or None))
    print(f"  bound fits the room (reserve, no query):    {reserved:8.0f}")
    only_reserve = median_us(lambda: quota.reserve(one, 1), rounds=100_000)
    print(f"    of which StorageQuota.reserve:            {only_reserve:8.1f}")
    cap = quota.cap_bytes
    for schema, label in ((one, "1 table"), (twenty, "20 tables")):
        # What `StorageGuard.before_commit` runs: the measure's steps, on the write's connection.
        measured = median_us(
            create(
                schema, lambda s=schema: drive(measure_steps(s, cap), conn, schema_sql(s)) and None
            )
        )
        print(f"  measured in the transaction ({label:9}):   {measured:8.0f}")

    for schema, label in ((one, "1 table"), (twenty, "20 tables")):
        alone = median_us(
            lambda s=schema: drive(measure_steps(s, cap), conn, schema_sql(s)) and None
        )
        print(f"  the files query alone ({label:9}):         {alone:8.0f}")

    print("live-rows scan of a service whose files reached the cap (ms):")
    table = sql.Identifier(one, "User")
    for megabytes in (1, 10, 50):
        conn.execute(sql.SQL("TRUNCATE {}").format(table))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, name, text) SELECT 'u' || g, 'user', %s "
                "FROM generate_series(1, %s) g"
            ).format(table),
            [secrets.token_hex(512), megabytes * 1024],
        )
        scan = median_us(lambda m=megabytes: measure_usage(conn, one, 1) and None, rounds=20)
        print(f"  {megabytes:3} MB of rows:                             {scan / 1000:8.1f}")


if __name__ == "__main__":
    main()
