"""A running tenant: its configuration plus the connection pools to its database.

Two pools share the configured `connectionLimit`. The event loop's asyncio pool serves the data
API (queries and mutations whose documents are already compiled: nearly every request) and gets
most of it; the synchronous pool serves worker threads: the management API, the bulk endpoints
and data requests that need planning first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg import Connection, sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from runtime import store
from runtime.config import ServerConfig
from runtime.loop_pool import LoopPool

log = logging.getLogger("runtime")


@dataclass
class Tenant:
    config: ServerConfig
    pool: ConnectionPool
    loop_pool: LoopPool | None = field(default=None, repr=False)
    # Requests using the tenant now (a registered server's pools close only when none does).
    in_flight: int = 0
    last_used: float = 0.0

    @property
    def management_schema(self) -> str:
        return self.config.database.management_schema

    def service_schema(self, pid: str) -> str:
        """Each service lives in its own schema (`service$stage`) unless the config pins one."""
        return self.config.database.schema or pid

    @classmethod
    def open(cls, config: ServerConfig, *, create_database: bool = True) -> Tenant:
        """Connect, creating the database (as Prisma does) and the management tables if missing.

        A registered server's database is the user's own: it is never created, and it is tried
        once first (`create_database=False`), so a wrong address or password fails at once with
        libpq's reason instead of the pool retrying in the background."""
        if create_database:
            _create_database_if_missing(config)
        else:
            with psycopg.connect(config.database.conninfo(connect_timeout=5)) as conn:
                store.ensure_schema(conn, config.database.management_schema)
        pool = ConnectionPool(
            config.database.conninfo(),
            min_size=1,
            max_size=thread_connections(config),
            # A round trip per checkout keeps a restarted database from failing a request; the
            # threads serve the rarer requests (the hot path is the loop's pool, which retries).
            check=ConnectionPool.check_connection,
            open=True,
            name=f"tenant-{config.name}",
        )
        pool.wait(timeout=30)
        with pool.connection() as conn:
            store.ensure_schema(conn, config.database.management_schema)
        return cls(config=config, pool=pool)

    async def open_loop_pool(self) -> None:
        """Open the asyncio pool; it needs the running event loop, so it opens after `open`."""
        limit = self.config.database.connection_limit
        # Named apart from the threads' connections, so pg_stat_activity tells them apart. The
        # loop serves only the data API, so its connections carry the data API's statement
        # timeout as a connection option: no statement spent on it per request.
        options = {}
        if self.config.limits.statement_timeout_ms:
            options["options"] = f"-c statement_timeout={self.config.limits.statement_timeout_ms}"
        conninfo = make_conninfo(
            self.config.database.conninfo(), application_name="refract-runtime-loop", **options
        )
        self.loop_pool = LoopPool(conninfo, limit - thread_connections(self.config))
        await self.loop_pool.open()

    @contextlib.contextmanager
    def service_statements(self, conn: Connection) -> Iterator[Connection]:
        """A thread's connection while it serves a service request: its statements are held to
        the data API's timeout. The threads' pool also serves the management API, whose deploys
        must not be cut short, so the setting is made and undone around the request (the worker
        threads serve the rarer requests; the loop's connections carry it from the start)."""
        timeout = self.config.limits.statement_timeout_ms
        if not timeout:
            yield conn
            return
        conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(timeout)))
        try:
            yield conn
        finally:
            if conn.info.transaction_status == TransactionStatus.IDLE:
                conn.execute("RESET statement_timeout")
            elif not conn.closed:
                conn.close()  # the pool drops it, setting and all

    def connection_shares(self) -> dict[str, int]:
        """How many connections of each pool one service may hold at once on a sandbox: a
        quarter of the loop's (at least one) and half the threads' (at least one), so one
        service's expensive requests cannot take every connection from the others."""
        loop = self.loop_pool.max_size if self.loop_pool is not None else 1
        return {"loop": max(1, loop // 4), "threads": max(1, thread_connections(self.config) // 2)}

    def close(self) -> None:
        self.pool.close()

    async def close_loop_pool(self) -> None:
        if self.loop_pool is not None:
            await self.loop_pool.close()


def thread_connections(config: ServerConfig) -> int:
    """The worker threads' share of `connectionLimit` (at least 2): a quarter, at least one."""
    return max(1, config.database.connection_limit // 4)


def _create_database_if_missing(config: ServerConfig) -> None:
    database = config.database
    try:
        with psycopg.connect(database.conninfo(), connect_timeout=10):
            return
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise
    log.info("creating database %s", database.database)
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.database)))
