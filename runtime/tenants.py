"""A running tenant: its configuration plus the connection pool to its database."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from runtime import store
from runtime.config import ServerConfig

log = logging.getLogger("runtime")


@dataclass
class Tenant:
    config: ServerConfig
    pool: ConnectionPool

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
            max_size=config.database.connection_limit,
            open=True,
            name=f"tenant-{config.name}",
        )
        pool.wait(timeout=30)
        with pool.connection() as conn:
            store.ensure_schema(conn, config.database.management_schema)
        return cls(config=config, pool=pool)

    def close(self) -> None:
        self.pool.close()


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
