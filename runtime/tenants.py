"""A running tenant: its configuration plus the connection pools to its database.

Two pools share the configured `connectionLimit`. The event loop's asyncio pool serves the data
API (queries and mutations whose documents are already compiled: nearly every request) and gets
most of it; the synchronous pool serves worker threads: the management API, the bulk endpoints
and data requests that need planning first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
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

    @property
    def management_schema(self) -> str:
        return self.config.database.management_schema

    def service_schema(self, pid: str) -> str:
        """Each service lives in its own schema (`service$stage`) unless the config pins one."""
        return self.config.database.schema or pid

    @classmethod
    def open(cls, config: ServerConfig) -> Tenant:
        """Connect, creating the database (as Prisma does) and the management tables if missing."""
        _create_database_if_missing(config)
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
        # Named apart from the threads' connections, so pg_stat_activity tells them apart.
        conninfo = make_conninfo(
            self.config.database.conninfo(), application_name="refract-runtime-loop"
        )
        self.loop_pool = LoopPool(conninfo, limit - thread_connections(self.config))
        await self.loop_pool.open()

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
