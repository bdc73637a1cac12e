"""A deployed service per test module: the datamodel migrated into a fresh schema, served
through the executor exactly as the app will call it.

The schema is created with the migration planner and SQL compiler the deploy mutation uses, in
the session database of `tests/runtime/conftest.py`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from psycopg import sql

from runtime import store
from runtime.datamodel import Schema, parse_datamodel
from runtime.migrations import migration_sql, plan_migration
from runtime.names import ident
from runtime.opencrud.executor import Answer, ServiceApi, execute, service_api
from runtime.subscriptions.events import EventSink, channel_for, listeners_table
from tests.runtime.conftest import Database


class CountingCursor(psycopg.Cursor):
    """Counts the statements a connection runs (for the N+1 checks)."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.connection.statements += 1  # type: ignore[attr-defined]
        return super().execute(*args, **kwargs)


@dataclass
class Service:
    """A deployed datamodel and a client that talks to it through `execute`."""

    database: Database
    schema_name: str
    api: ServiceApi
    conn: psycopg.Connection
    requests: list[Any] = field(default_factory=list)

    def request(self, payload: Any) -> Answer:
        answer = execute(self.api, self.schema_name, payload, self.conn, "local:test")
        self.conn.commit()
        return answer

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        answer = self.request(payload)
        assert answer.status == 200, answer.body
        return json.loads(answer.body)

    def data(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """The `data` of a query that must succeed."""
        result = self.query(query, variables)
        assert "errors" not in result, result
        return result["data"]

    def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The only error of a query that must fail."""
        result = self.query(query, variables)
        assert "errors" in result, result
        return result["errors"][0]

    def insert(self, table: str, **values: Any) -> None:
        """A row written directly, as data that existed before the test's requests."""
        query = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
            sql.Identifier(self.schema_name),
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(k) for k in values),
            sql.SQL(", ").join(sql.Placeholder() for _ in values),
        )
        self.conn.execute(query, list(values.values()))

    def table_rows(self, table: str, *columns: str) -> list[tuple[Any, ...]]:
        """Rows of a service table, read directly (to check the stored layout)."""
        query = sql.SQL("SELECT {} FROM {}.{}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            sql.Identifier(self.schema_name),
            sql.Identifier(table),
        )
        return self.sql(query.as_string(self.conn))

    def statements(self) -> int:
        return self.conn.statements  # type: ignore[attr-defined]

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        cursor = self.conn.execute(query, params)  # type: ignore[arg-type]
        rows = cursor.fetchall() if cursor.description else []
        self.conn.commit()
        return rows


def deploy(database: Database, datamodel: str) -> Service:
    result = parse_datamodel(datamodel)
    assert result.ok, result.errors
    assert result.schema is not None
    schema_name = f"svc{secrets.token_hex(4)}$test"
    statements = migration_sql(
        schema_name, Schema(), result.schema, plan_migration(Schema(), result.schema)
    )
    conn = psycopg.connect(database.conninfo(), cursor_factory=CountingCursor)
    conn.statements = 0  # type: ignore[attr-defined]
    conn.execute(f"CREATE SCHEMA {ident(schema_name)}")
    for statement in statements:
        conn.execute(statement)  # type: ignore[arg-type]
    conn.commit()
    return Service(database, schema_name, service_api(result.schema.to_json()), conn)


@pytest.fixture(scope="module")
def service(request: pytest.FixtureRequest, database: Database) -> Iterator[Service]:
    """The module's `DATAMODEL`, deployed once for all of its tests."""
    deployed = deploy(database, request.module.DATAMODEL)
    yield deployed
    deployed.conn.close()


MANAGEMENT = "management"  # the management schema the sinks of these tests name
REGISTRY = sql.Identifier(MANAGEMENT, "Listener")  # its channels listened on


def sink_for(service: Service, project: str) -> EventSink:
    """Where a mutation of `project` publishes, on a server whose management schema is
    `MANAGEMENT` in the service's database."""
    channel = channel_for(service.database.database, MANAGEMENT, project)
    return EventSink(channel, project, listeners_table(MANAGEMENT))


@pytest.fixture
def listener(service: Service) -> Iterator[psycopg.Connection]:
    """A connection of its own to the service's database, to LISTEN for its events (`listen`)."""
    conn = psycopg.connect(service.database.conninfo(), autocommit=True)
    store.ensure_schema(conn, MANAGEMENT)
    yield conn
    conn.execute(sql.SQL('DELETE FROM {} WHERE "backend" = pg_backend_pid()').format(REGISTRY))
    conn.close()


def listen(conn: psycopg.Connection, sink: EventSink, *, listed: bool = True) -> None:
    """LISTEN on the sink's channel and, with `listed`, list it in the server's registry, as a
    runtime's listener does: mutations notify only a listed channel."""
    conn.execute(f"LISTEN {ident(sink.channel)}")
    if listed:
        conn.execute(
            sql.SQL('INSERT INTO {} ("channel", "backend") VALUES (%s, pg_backend_pid())').format(
                REGISTRY
            ),
            [sink.channel],
        )
