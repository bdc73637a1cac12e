"""The `deploy` mutation (reference section 1.3): validate, plan, check data, apply.

Prisma schedules the migration and applies it in a background actor; here the SQL runs inside
the deploy request, in the same transaction that records the migration, so a deploy is all or
nothing and `migrationStatus` already reports `SUCCESS` when the CLI first polls. A row lock on
the project serialises concurrent deploys of one service.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import psycopg
from graphql import GraphQLResolveInfo
from psycopg import Connection

from runtime import store
from runtime.datamodel import Schema, parse_datamodel
from runtime.errors import PrismaError, project_not_found
from runtime.management.context import context_of
from runtime.migrations import (
    UpdateSecrets,
    check_migration,
    check_passive,
    migration_sql,
    plan_migration,
)
from runtime.names import ident

log = logging.getLogger("runtime.deploy")


class DatabaseFacts:
    """Answers `DataFacts` questions about one service schema with a query each (cached)."""

    def __init__(self, conn: Connection, schema: str) -> None:
        self.conn = conn
        self.schema = schema
        self.cache: dict[tuple[str, ...], bool] = {}

    def _exists(self, table: str) -> bool:
        key = ("exists", table)
        if key not in self.cache:
            row = self.conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", [f"{ident(self.schema)}.{ident(table)}"]
            ).fetchone()
            self.cache[key] = bool(row and row[0])
        return self.cache[key]

    def _ask(
        self, key: tuple[str, ...], tables: tuple[str, ...], query: str, params: Any = None
    ) -> bool:
        """The boolean answer of `query`, false when one of `tables` does not exist (yet)."""
        if key not in self.cache:
            answer = False
            if all(self._exists(t) for t in tables):
                row = self.conn.execute(query, params).fetchone()
                answer = bool(row and row[0])
            self.cache[key] = answer
        return self.cache[key]

    def table(self, table: str) -> str:
        return f"{ident(self.schema)}.{ident(table)}"

    # The queries below interpolate identifiers only, each quoted by ident().

    def columns(self, table: str) -> set[str] | None:
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            [self.schema, table],
        ).fetchall()
        return {r[0] for r in rows} or None

    def has_rows(self, table: str) -> bool:
        return self._ask(
            ("rows", table),
            (table,),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(table)})",  # noqa: S608
        )

    def has_nulls(self, table: str, column: str) -> bool:
        return self._ask(
            ("nulls", table, column),
            (table,),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(table)} WHERE {ident(column)} IS NULL)",  # noqa: S608
        )

    def has_values(self, table: str, column: str) -> bool:
        return self._ask(
            ("values", table, column),
            (table,),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(table)} WHERE {ident(column)} IS NOT NULL)",  # noqa: S608
        )

    def has_duplicates(self, table: str, column: str) -> bool:
        c = ident(column)
        return self._ask(
            ("duplicates", table, column),
            (table,),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(table)} WHERE {c} IS NOT NULL "  # noqa: S608
            f"GROUP BY {c} HAVING count(*) > 1)",
        )

    def has_value(self, table: str, column: str, value: str) -> bool:
        return self._ask(
            ("value", table, column, value),
            (table,),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(table)} WHERE {ident(column)} = %s)",  # noqa: S608
            [value],
        )

    def has_pairs(self, table: str, column_a: str, column_b: str) -> bool:
        return self._ask(
            ("pairs", table, column_a, column_b),
            (table,),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(table)} WHERE {ident(column_a)} "  # noqa: S608
            f"IS NOT NULL AND {ident(column_b)} IS NOT NULL)",
        )

    def has_unlinked(
        self, model_table: str, id_column: str, table: str, this_column: str, other_column: str
    ) -> bool:
        return self._ask(
            ("unlinked", model_table, id_column, table, this_column, other_column),
            (model_table, table),
            f"SELECT EXISTS (SELECT 1 FROM {self.table(model_table)} AS node "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT 1 FROM {self.table(table)} AS link "
            f"WHERE link.{ident(this_column)} = node.{ident(id_column)} "
            f"AND link.{ident(other_column)} IS NOT NULL))",
        )


def _payload(
    *,
    errors: list[dict[str, Any]] | None = None,
    warnings: list[dict[str, Any]] | None = None,
    steps: list[dict[str, Any]] | None = None,
    migration: dict[str, Any] | None = None,
    client_mutation_id: str | None = None,
) -> dict[str, Any]:
    return {
        "errors": errors or [],
        "warnings": warnings or [],
        "steps": steps or [],
        "migration": migration,
        "clientMutationId": client_mutation_id,
    }


def deploy(_: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
    ctx = context_of(info)
    tenant = ctx.tenant
    name, stage = input["name"], input["stage"]
    pid = store.project_id(name, stage)
    schema = tenant.management_schema
    mutation_id = input.get("clientMutationId")

    with tenant.pool.connection() as conn:
        # Prisma loads the project before checking the token: an unknown service is 4000.
        if store.get_project(conn, schema, pid) is None:
            raise project_not_found(name, stage)
    ctx.verify(name, stage)

    limits = tenant.config.limits
    datamodel = input["types"]
    parsed = parse_datamodel(
        datamodel, max_bytes=limits.datamodel_bytes, max_types=limits.datamodel_types
    )
    if parsed.syntax_error is not None:
        raise PrismaError(3017, parsed.syntax_error)
    if parsed.schema is None:
        return _payload(errors=[e.as_dict() for e in parsed.errors], client_mutation_id=mutation_id)
    new_schema = parsed.schema

    force = bool(input.get("force"))
    dry_run = bool(input.get("dryRun"))
    secrets = list(input.get("secrets") or [])
    functions = list(input.get("subscriptions") or [])
    service_schema = tenant.service_schema(pid)

    with tenant.pool.connection() as conn, conn.transaction():
        project = store.get_project(conn, schema, pid, lock=True)
        if project is None:
            raise project_not_found(name, stage)
        last = store.last_successful_migration(conn, schema, pid)
        old_schema = Schema.from_json(last.schema if last else None)
        facts = DatabaseFacts(conn, service_schema)
        if input.get("noMigration"):
            # A passive deploy: the tables exist already (made by hand or another tool).
            passive_errors = check_passive(new_schema, facts)
            if passive_errors:
                return _payload(
                    errors=[e.as_dict() for e in passive_errors], client_mutation_id=mutation_id
                )
            steps = []
        else:
            steps = plan_migration(old_schema, new_schema)
        check = check_migration(old_schema, new_schema, steps, facts)
        step_dicts = [s.as_dict() for s in steps]
        warnings = [w.as_dict() for w in check.warnings]
        if check.errors:
            # Prisma's DeployMutation answers errors alone: no warnings, no steps, no migration.
            return _payload(
                errors=[e.as_dict() for e in check.errors], client_mutation_id=mutation_id
            )
        if warnings and not force:
            return _payload(warnings=warnings, steps=step_dicts, client_mutation_id=mutation_id)
        if project.secrets != secrets and not dry_run:
            store.update_secrets(conn, schema, pid, secrets)
            step_dicts.append(UpdateSecrets().as_dict())
        schema_changed = last is None or old_schema != new_schema
        if dry_run or not (step_dicts or functions or schema_changed):
            return _payload(warnings=warnings, steps=step_dicts, client_mutation_id=mutation_id)

        migration = store.Migration(
            project_id=pid,
            revision=store.next_revision(conn, schema, pid),
            schema=new_schema.to_json(),
            status="SUCCESS",
            applied=len(step_dicts),
            rolled_back=0,
            steps=step_dicts,
            errors=[],
            datamodel=datamodel,
            started_at=datetime.now(UTC).replace(tzinfo=None),
            functions=functions,
        )
        statements = migration_sql(service_schema, old_schema, new_schema, steps)
        try:
            with conn.transaction():
                # One round trip for the whole migration: a new 30-type service is ~450
                # statements. Without parameters PostgreSQL takes them as one simple query.
                script = ";\n".join(
                    [f"CREATE SCHEMA IF NOT EXISTS {ident(service_schema)}", *statements]
                )
                conn.execute(script)
        except psycopg.Error as exc:
            log.warning("migration of %s failed: %s", pid, exc)
            migration.status = "ROLLBACK_SUCCESS"
            migration.applied = 0
            migration.schema = old_schema.to_json()
            migration.errors = [f"{type(exc).__name__}: {str(exc).strip()}"]
        migration.finished_at = datetime.now(UTC).replace(tzinfo=None)
        store.insert_migration(conn, schema, migration)
        return _payload(
            warnings=warnings,
            steps=step_dicts,
            migration=migration.as_graphql(),
            client_mutation_id=mutation_id,
        )
