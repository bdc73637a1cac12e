"""Bookkeeping in the `management` schema of a server's database (reference section 7).

Tables and columns follow Prisma's layout (`"Project"`, `"Migration"`, `"CloudSecret"`), so an
operator who knows Prisma finds their way; `"Listener"` is Refract's own (the subscription
channels listened on, `runtime.subscriptions`). Every function takes an open connection; the caller
owns the transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import Connection, sql
from psycopg.rows import dict_row

OPEN_STATUSES = ("PENDING", "IN_PROGRESS", "ROLLING_BACK")


@dataclass
class Project:
    id: str
    secrets: list[str]

    @property
    def name(self) -> str:
        return self.id.rsplit("$", 1)[0]

    @property
    def stage(self) -> str:
        return self.id.rsplit("$", 1)[1]


@dataclass
class Migration:
    project_id: str
    revision: int
    schema: str
    status: str
    applied: int
    rolled_back: int
    steps: list[dict[str, Any]]
    errors: list[str]
    datamodel: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    functions: list[Any] = field(default_factory=list)

    def as_graphql(self) -> dict[str, Any]:
        return {
            "projectId": self.project_id,
            "revision": self.revision,
            "status": self.status,
            "applied": self.applied,
            "rolledBack": self.rolled_back,
            "errors": self.errors,
            "startedAt": _timestamp(self.started_at),
            "finishedAt": _timestamp(self.finished_at),
            "datamodel": self.datamodel,
            "steps": self.steps,
        }


def _timestamp(value: datetime | None) -> str | None:
    """Prisma's DateTime format: UTC with milliseconds, `2019-01-01T00:00:00.000Z`."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _q(query: str, schema: str) -> sql.Composed:
    """A query over the management tables; `{s}` is the (quoted) management schema."""
    return sql.SQL(query).format(s=sql.Identifier(schema))


def project_id(name: str, stage: str) -> str:
    return f"{name}${stage}"


def ensure_schema(conn: Connection, schema: str) -> None:
    """Create the management tables if missing; an advisory lock keeps parallel starts apart."""
    s = sql.Identifier(schema).as_string(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(1000)")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {s}."Project" ('
            '"id" varchar(200) PRIMARY KEY, "secrets" text NOT NULL DEFAULT \'[]\', '
            '"allowQueries" boolean NOT NULL DEFAULT true, '
            '"allowMutations" boolean NOT NULL DEFAULT true, '
            "\"functions\" text NOT NULL DEFAULT '[]')"
        )
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {s}."Migration" ('
            f'"projectId" varchar(200) NOT NULL REFERENCES {s}."Project" ("id") '
            "ON DELETE CASCADE ON UPDATE CASCADE, "
            '"revision" integer NOT NULL, "schema" text, "functions" text, '
            '"status" varchar(20) NOT NULL, "applied" integer NOT NULL DEFAULT 0, '
            '"rolledBack" integer NOT NULL DEFAULT 0, "steps" text, "errors" text, '
            '"startedAt" timestamp(3), "finishedAt" timestamp(3), "datamodel" text, '
            'PRIMARY KEY ("projectId", "revision"))'
        )
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {s}."CloudSecret" ("secret" varchar(255) PRIMARY KEY)'
        )
        # The channels runtime processes listen on, a row per channel and listening session
        # (its backend's pid): a mutation notifies only a channel listed here
        # (`runtime.subscriptions.events`).
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {s}."Listener" ('
            '"channel" varchar(63) NOT NULL, "backend" integer NOT NULL, '
            '"since" timestamp(3) NOT NULL DEFAULT now(), PRIMARY KEY ("channel", "backend"))'
        )
        # A runtime that starts removes the rows of sessions that have ended, as a listener
        # that connects does.
        conn.execute(ended_listeners(schema))


def ended_listeners(schema: str) -> sql.Composed:
    """Removes the `"Listener"` rows of listening sessions that have ended (a runtime process
    killed, say), which would make mutations notify nobody."""
    return _q(
        'DELETE FROM {s}."Listener" WHERE "backend" NOT IN (SELECT "pid" FROM pg_stat_activity)',
        schema,
    )


def get_project(conn: Connection, schema: str, pid: str, *, lock: bool = False) -> Project | None:
    suffix = " FOR UPDATE" if lock else ""
    row = conn.execute(
        _q('SELECT "id", "secrets" FROM {s}."Project" WHERE "id" = %s' + suffix, schema),  # noqa: S608 - a fixed suffix
        [pid],
    ).fetchone()
    if row is None:
        return None
    return Project(id=row[0], secrets=json.loads(row[1] or "[]"))


@dataclass(frozen=True)
class ServiceState:
    """What every data request needs first: the service's secrets and deployed revision.
    `stored` is the secrets as the database holds them (JSON text): a state read again is
    unchanged when that text and the revision are, with no parsing."""

    secrets: list[str]
    revision: int | None
    stored: str | None = field(default=None, compare=False, repr=False)


def service_state_query(schema: str) -> sql.Composed:
    """The query behind `service_state` (one parameter: the project id), for any driver."""
    return _q(
        'SELECT p."secrets", (SELECT max(m."revision") FROM {s}."Migration" m '
        """WHERE m."projectId" = p."id" AND m."status" = 'SUCCESS') """
        'FROM {s}."Project" p WHERE p."id" = %s',
        schema,
    )


def service_states_query(schema: str) -> sql.Composed:
    """`service_state_query` for several services at once (one parameter: a list of project
    ids); each row is the project id, then what `service_state_of` reads."""
    return _q(
        'SELECT p."id", p."secrets", (SELECT max(m."revision") FROM {s}."Migration" m '
        """WHERE m."projectId" = p."id" AND m."status" = 'SUCCESS') """
        'FROM {s}."Project" p WHERE p."id" = ANY(%s)',
        schema,
    )


def service_state_of(row: tuple[Any, ...] | None) -> ServiceState | None:
    if row is None:
        return None
    return ServiceState(secrets=json.loads(row[0] or "[]"), revision=row[1], stored=row[0])


def service_state(conn: Connection, schema: str, pid: str) -> ServiceState | None:
    """One small query per request; the schema itself is fetched only when its revision is
    new to this process (see `migration_schema`)."""
    return service_state_of(conn.execute(service_state_query(schema), [pid]).fetchone())


def migration_schema(conn: Connection, schema: str, pid: str, revision: int) -> str:
    row = conn.execute(
        _q('SELECT "schema" FROM {s}."Migration" WHERE "projectId" = %s AND "revision" = %s',
           schema),
        [pid, revision],
    ).fetchone()  # fmt: skip
    return row[0] if row and row[0] else ""


def list_projects(conn: Connection, schema: str) -> list[Project]:
    rows = conn.execute(_q('SELECT "id", "secrets" FROM {s}."Project" ORDER BY "id"', schema))
    return [Project(id=r[0], secrets=json.loads(r[1] or "[]")) for r in rows]


def insert_project(conn: Connection, schema: str, pid: str, secrets: list[str]) -> Project:
    conn.execute(
        _q('INSERT INTO {s}."Project" ("id", "secrets") VALUES (%s, %s)', schema),
        [pid, json.dumps(secrets)],
    )
    return Project(id=pid, secrets=secrets)


def update_secrets(conn: Connection, schema: str, pid: str, secrets: list[str]) -> None:
    conn.execute(
        _q('UPDATE {s}."Project" SET "secrets" = %s WHERE "id" = %s', schema),
        [json.dumps(secrets), pid],
    )


def delete_project(conn: Connection, schema: str, pid: str) -> None:
    conn.execute(_q('DELETE FROM {s}."Project" WHERE "id" = %s', schema), [pid])


def insert_migration(conn: Connection, schema: str, migration: Migration) -> None:
    conn.execute(
        _q(
            'INSERT INTO {s}."Migration" ("projectId", "revision", "schema", '
            '"functions", "status", "applied", "rolledBack", "steps", "errors", "startedAt", '
            '"finishedAt", "datamodel") VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)',
            schema,
        ),
        [
            migration.project_id,
            migration.revision,
            migration.schema,
            json.dumps(migration.functions),
            migration.status,
            migration.applied,
            migration.rolled_back,
            json.dumps(migration.steps),
            json.dumps(migration.errors),
            migration.started_at,
            migration.finished_at,
            migration.datamodel,
        ],
    )


def next_revision(conn: Connection, schema: str, pid: str) -> int:
    row = conn.execute(
        _q(
            'SELECT COALESCE(MAX("revision"), 0) FROM {s}."Migration" WHERE "projectId" = %s',
            schema,
        ),
        [pid],
    ).fetchone()
    return int(row[0]) + 1 if row else 1


def _migrations(conn: Connection, schema: str, where: str, params: list[Any]) -> list[Migration]:
    with conn.cursor(row_factory=dict_row) as cur:
        query = _q('SELECT * FROM {s}."Migration" WHERE ' + where, schema)  # noqa: S608 - our clauses
        cur.execute(query, params)
        return [
            Migration(
                project_id=r["projectId"],
                revision=r["revision"],
                schema=r["schema"] or "",
                status=r["status"],
                applied=r["applied"],
                rolled_back=r["rolledBack"],
                steps=json.loads(r["steps"] or "[]"),
                errors=json.loads(r["errors"] or "[]"),
                datamodel=r["datamodel"] or "",
                started_at=r["startedAt"],
                finished_at=r["finishedAt"],
                functions=json.loads(r["functions"] or "[]"),
            )
            for r in cur.fetchall()
        ]


def last_successful_migration(conn: Connection, schema: str, pid: str) -> Migration | None:
    found = _migrations(
        conn,
        schema,
        '"projectId" = %s AND "status" = \'SUCCESS\' ORDER BY "revision" DESC LIMIT 1',
        [pid],
    )
    return found[0] if found else None


def migration_status(conn: Connection, schema: str, pid: str) -> Migration | None:
    """The oldest open migration, else the newest finished one.

    Prisma returns the newest *successful* one here; we return a newer failed (rolled back) one
    instead, so the CLI's polling sees its errors rather than reporting the old success.
    """
    open_ = _migrations(
        conn,
        schema,
        '"projectId" = %s AND "status" = ANY(%s) ORDER BY "revision" ASC LIMIT 1',
        [pid, list(OPEN_STATUSES)],
    )
    if open_:
        return open_[0]
    newest = _migrations(conn, schema, '"projectId" = %s ORDER BY "revision" DESC LIMIT 1', [pid])
    return newest[0] if newest else None


def list_migrations(conn: Connection, schema: str, pid: str) -> list[Migration]:
    return _migrations(conn, schema, '"projectId" = %s ORDER BY "revision" DESC', [pid])


def set_cloud_secret(conn: Connection, schema: str, secret: str | None) -> None:
    conn.execute(_q('DELETE FROM {s}."CloudSecret"', schema))
    if secret:
        conn.execute(_q('INSERT INTO {s}."CloudSecret" ("secret") VALUES (%s)', schema), [secret])


def project_datamodels(
    conn: Connection, schema: str, ids: list[str] | None = None
) -> dict[str, str]:
    """The datamodel of every project's newest successful migration (or of the projects `ids`),
    in one query."""
    newest = (
        'SELECT DISTINCT ON ("projectId") "projectId", "datamodel" FROM {s}."Migration" '
        'WHERE "status" = \'SUCCESS\' AND ("projectId" = ANY(%s) OR %s) '
        'ORDER BY "projectId", "revision" DESC'
    )
    rows = conn.execute(_q(newest, schema), [ids or [], ids is None])
    return {r[0]: r[1] or "" for r in rows}
