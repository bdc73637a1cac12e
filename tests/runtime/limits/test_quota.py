"""The storage cap, measured from a real PostgreSQL (a scratch database per session).

Each test lays out a service schema the way the runtime does (`ws~svc$dev`, model tables with a
cuid-sized id) and fills it with incompressible text, so sizes are what the bytes say.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from runtime.config import parse_config
from runtime.names import bind_schema, schema_sql
from runtime.opencrud.steps import Result
from runtime.quota import StorageGuard, StorageLimitReached, StorageQuota, shrinks_only
from tests.runtime.conftest import Database

KB = 1024


@pytest.fixture
def service(database: Database) -> Iterator[str]:
    """A fresh service schema with a `Post` table, dropped after the test."""
    schema = f"ws~svc{secrets.token_hex(4)}$dev"
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL("CREATE TABLE {} (id varchar(25) PRIMARY KEY, title text NOT NULL)").format(
                sql.Identifier(schema, "Post")
            )
        )
    yield schema
    with database.connect() as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def add_posts(conn: psycopg.Connection, schema: str, count: int, text_bytes: int) -> None:
    """Rows of random hex, which PostgreSQL cannot compress much."""
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} (id, title) VALUES (%s, %s)").format(
                sql.Identifier(schema, "Post")
            ),
            [
                (f"c{secrets.token_hex(12)}", secrets.token_hex(text_bytes // 2))
                for _ in range(count)
            ],
        )


def test_writes_are_refused_over_the_cap_and_allowed_again_after_deletes(
    database: Database, service: str
) -> None:
    quota = StorageQuota(256 * KB, max_age=60)
    with database.connect() as conn:
        assert not quota.check_write(conn, service).over

        # ~600 kB of posts (sequential ids, so the oldest rows sit at the front of the table).
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (id, title) SELECT 'c' || lpad(g::text, 24, '0'), %s"
                    " FROM generate_series(1, 600) g"
                ).format(sql.Identifier(service, "Post")),
                [secrets.token_hex(500)],
            )
        quota.record_write(service)
        with pytest.raises(StorageLimitReached) as refused:
            quota.check_write(conn, service)
        assert refused.value.code == 1003
        assert refused.value.message.startswith(
            f"The service '{service}' has reached its storage limit of 256 kB (it stores "
        )
        assert "Queries and deletes still work." in refused.value.message

        # Reads still work, on the very connection that was refused.
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(service, "Post"))
        ).fetchone()
        assert count == (600,)

        # Until something is deleted, the refusal holds (and costs no query).
        with pytest.raises(StorageLimitReached):
            quota.check_write(conn, service)

        # Deleting the oldest 80% frees no file space (PostgreSQL keeps the pages), but the
        # service now holds well under its cap: writes go through again.
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id <= %s").format(sql.Identifier(service, "Post")),
            ["c" + "480".rjust(24, "0")],
        )
        quota.record_delete(service)
        usage = quota.check_write(conn, service)
        assert not usage.over
        assert usage.live, "the files alone are still over the cap"
        assert usage.used_bytes < 256 * KB

        # And filling it again is refused again.
        add_posts(conn, service, 400, 1000)
        quota.record_write(service)
        with pytest.raises(StorageLimitReached):
            quota.check_write(conn, service)


def test_the_measure_counts_toast_and_indexes(database: Database, service: str) -> None:
    quota = StorageQuota(100 * 1024 * KB)
    with database.connect() as conn:
        empty = quota.usage(conn, service, fresh=True).used_bytes
        add_posts(conn, service, 5, 200 * KB)  # each title is stored out of line (TOAST)
        with_toast = quota.usage(conn, service, fresh=True).used_bytes
        assert with_toast - empty >= 5 * 200 * KB * 0.9

        add_posts(conn, service, 2000, 100)
        before_index = quota.usage(conn, service, fresh=True).used_bytes
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} (left(title, 200))").format(
                sql.Identifier("Post_title_idx"), sql.Identifier(service, "Post")
            )
        )
        after_index = quota.usage(conn, service, fresh=True).used_bytes
        assert after_index - before_index >= 2000 * 100


def test_a_write_whose_bound_fits_the_room_needs_no_measure_and_one_that_could_not_is_measured(
    database: Database, service: str
) -> None:
    quota = StorageQuota(512 * KB, max_age=60)
    guard = StorageGuard(quota, service, service)
    with database.connect() as conn:
        assert not quota.check_write(conn, service).over
        add_posts(conn, service, 50, 1000)  # about 60 kB, bounded by 100 kB: no measure
        assert run_steps(conn, service, guard.before_commit(100 * KB)) == []
        assert quota.cached_usage(service).used_bytes < 60 * KB  # the measure from before

        # 600 kB more, bounded by 700 kB: it could reach the cap, so it is measured, in the
        # transaction that wrote it, and refused.
        conn.execute("BEGIN")
        add_posts(conn, service, 600, 1000)
        with pytest.raises(StorageLimitReached) as refused:
            run_steps(conn, service, guard.before_commit(700 * KB))
        assert "so it was rolled back and nothing was changed" in refused.value.message
        conn.execute("ROLLBACK")
        assert quota.cached_usage(service) is None  # the next write measures again
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(service, "Post"))
        ).fetchone()
        assert count == (50,)


def run_steps(conn: psycopg.Connection, schema: str, steps) -> list[str]:
    """Drive storage-guard steps on a connection; the statements they ran."""
    ran: list[str] = []
    result = None
    while True:
        try:
            command = steps.send(result)
        except StopIteration:
            return ran
        ran.append(command.query)
        cur = conn.execute(bind_schema(command.query, schema_sql(schema)), command.params)
        result = Result(cur.fetchall() if cur.description else [], cur.rowcount)


def test_writes_from_other_processes_are_seen_when_the_measure_expires(
    database: Database, service: str
) -> None:
    now = [0.0]
    quota = StorageQuota(256 * KB, max_age=2.0, clock=lambda: now[0])
    with database.connect() as conn, database.connect() as other_process:
        assert not quota.check_write(conn, service).over
        add_posts(other_process, service, 400, 1000)  # this quota is not told
        now[0] = 1.999
        assert not quota.check_write(conn, service).over, "the measure is still trusted"
        now[0] = 2.0
        with pytest.raises(StorageLimitReached):
            quota.check_write(conn, service)


def test_a_refusal_inside_a_transaction_leaves_it_usable(database: Database, service: str) -> None:
    quota = StorageQuota(64 * KB)
    with psycopg.connect(database.conninfo()) as conn:  # not autocommit: one open transaction
        add_posts(conn, service, 200, 1000)
        with pytest.raises(StorageLimitReached) as refused:
            quota.check_write(conn, service)
        assert refused.value.usage.live  # over by its files, so the live rows were measured
        assert conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(service, "Post"))
        ).fetchone() == (200,)
        conn.rollback()


def test_a_service_without_tables_stores_nothing(database: Database) -> None:
    quota = StorageQuota(KB)
    with database.connect() as conn:
        usage = quota.check_write(conn, "ws~nothing$dev")
    assert usage.used_bytes == 0


def test_only_delete_mutations_pass_a_full_service() -> None:
    assert shrinks_only(["deletePost", "deleteManyPosts"])
    assert not shrinks_only(["deletePost", "createPost"])
    assert not shrinks_only(["updatePost"])
    assert not shrinks_only([])


def test_a_sandbox_config_sets_the_cap_in_megabytes() -> None:
    config = parse_config(
        {
            "databases": {"default": {"connector": "postgres"}},
            "redisUrl": "redis://r",
            "sandbox": {"storageMb": 5},
        },
        {},
    )
    sandbox = config.servers[0].sandbox
    assert sandbox is not None
    assert StorageQuota.from_sandbox(sandbox).cap_bytes == 5 * 1024 * 1024
    default = parse_config(
        {
            "databases": {"default": {"connector": "postgres"}},
            "redisUrl": "redis://r",
            "sandbox": True,
        },
        {},
    )
    assert default.servers[0].sandbox is not None
    assert StorageQuota.from_sandbox(default.servers[0].sandbox).cap_bytes == 100 * 1024 * 1024


def test_toasted_values_count_when_the_live_rows_are_measured(
    database: Database, service: str
) -> None:
    quota = StorageQuota(512 * KB)
    with database.connect() as conn:
        add_posts(conn, service, 5, 200 * KB)
        with pytest.raises(StorageLimitReached) as refused:
            quota.check_write(conn, service)
        assert refused.value.usage.live
        assert refused.value.usage.used_bytes >= 5 * 200 * KB * 0.9

        conn.execute(
            sql.SQL("DELETE FROM {} WHERE id IN (SELECT id FROM {} LIMIT 4)").format(
                sql.Identifier(service, "Post"), sql.Identifier(service, "Post")
            )
        )
        quota.record_delete(service)
        assert quota.check_write(conn, service).used_bytes < 300 * KB
