"""Management queries and the project mutations (everything except `deploy`).

Each resolver checks the caller's grants for the (service, stage) it touches, as Prisma's
`verify(name, stage)` does, then does its work in one transaction on the tenant's database.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import psycopg
from graphql import GraphQLResolveInfo

from runtime import VERSION, quota, store
from runtime.auth import project_token
from runtime.datamodel import Schema
from runtime.errors import PrismaError, project_exists, project_not_found
from runtime.management.context import context_of
from runtime.names import ident

RESERVED_NAMES = frozenset({"cluster", "management", "export", "import"})
SERVICE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_~]*$")
STAGE_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9\-_]*$")
MAX_SCHEMA_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
NAME_RULE = (
    "It must start with a letter and may contain up to 30 letters, numbers, underscores and "
    "hyphens."
)


def validate_names(name: str, stage: str) -> None:
    """Prisma's order: reserved name (4006), reserved stage (4007), name (4001), stage (4002)."""
    if name in RESERVED_NAMES:
        raise PrismaError(4006, f"Service name {name} is reserved. Please choose a different name.")
    if stage in RESERVED_NAMES:
        raise PrismaError(
            4007, f"Service stage {stage} is reserved. Please choose a different stage."
        )
    if not SERVICE_NAME.match(name) or len(name) > 140:
        raise PrismaError(4001, f"{name} is not a valid name for a service name. {NAME_RULE}")
    if not STAGE_NAME.match(stage) or len(stage) > 30:
        raise PrismaError(4002, f"{stage} is not a valid name for a service stage. {NAME_RULE}")
    schema_bytes = len(store.project_id(name, stage).encode())
    if schema_bytes > MAX_SCHEMA_NAME_BYTES:
        # PostgreSQL would cut the schema name `name$stage` short, and two long names could
        # end up sharing one schema: refuse instead.
        raise PrismaError(
            4001,
            f"{name} is not a valid name for a service name: with its stage it makes the "
            f"database schema name '{name}${stage}' of {schema_bytes} characters, and "
            f"PostgreSQL allows {MAX_SCHEMA_NAME_BYTES}. Choose a shorter name or stage.",
        )


def project_view(project: store.Project, datamodel: str) -> dict[str, Any]:
    return {"name": project.name, "stage": project.stage, "datamodel": datamodel, "id": project.id}


def storage_bytes(parent: dict[str, Any], info: GraphQLResolveInfo) -> float:
    """What the service's schema holds on disk (`quota.FILES_SQL`), measured when asked: the
    console reads it once a minute for the sandbox page, nothing on the request path does."""
    tenant = context_of(info).tenant
    with tenant.pool.connection() as conn:
        row = conn.execute(quota.FILES_SQL, [tenant.service_schema(parent["id"])]).fetchone()
    return float(row[0] if row else 0)


def server_info(_: Any, info: GraphQLResolveInfo) -> dict[str, str]:
    return {
        "version": os.environ.get("CLUSTER_VERSION", VERSION),
        "commit": os.environ.get("COMMIT_SHA", "refract"),
        "primaryConnector": "postgres",
    }


def list_projects(_: Any, info: GraphQLResolveInfo) -> list[dict[str, Any]]:
    """Every project for a `*/*` grant, as Prisma; a token with workspace grants sees the
    projects its grants allow (`runtime.auth.management_listing`)."""
    ctx = context_of(info)
    listing = ctx.listing()
    schema = ctx.tenant.management_schema
    with ctx.tenant.pool.connection() as conn:
        projects = store.list_projects(conn, schema)
        if listing.everything:
            datamodels = store.project_datamodels(conn, schema)
        else:
            # On a shared sandbox: read the datamodels of the caller's projects only.
            projects = [p for p in projects if listing.allows(p.name, p.stage)]
            datamodels = store.project_datamodels(conn, schema, [p.id for p in projects])
        return [project_view(p, datamodels.get(p.id, "")) for p in projects]


def project(_: Any, info: GraphQLResolveInfo, name: str, stage: str) -> dict[str, Any]:
    ctx = context_of(info)
    ctx.verify(name, stage)
    schema = ctx.tenant.management_schema
    with ctx.tenant.pool.connection() as conn:
        found = store.get_project(conn, schema, store.project_id(name, stage))
        if found is None:
            raise project_not_found(name, stage)
        last = store.last_successful_migration(conn, schema, found.id)
        return project_view(found, last.datamodel if last else "")


def migration_status(_: Any, info: GraphQLResolveInfo, name: str, stage: str) -> dict[str, Any]:
    ctx = context_of(info)
    ctx.verify(name, stage)
    with ctx.tenant.pool.connection() as conn:
        migration = store.migration_status(
            conn, ctx.tenant.management_schema, store.project_id(name, stage)
        )
    if migration is None:
        raise project_not_found(name, stage)
    return migration.as_graphql()


def list_migrations(
    _: Any, info: GraphQLResolveInfo, name: str, stage: str
) -> list[dict[str, Any]]:
    ctx = context_of(info)
    ctx.verify(name, stage)
    schema = ctx.tenant.management_schema
    pid = store.project_id(name, stage)
    with ctx.tenant.pool.connection() as conn:
        if store.get_project(conn, schema, pid) is None:
            raise project_not_found(name, stage)
        return [m.as_graphql() for m in store.list_migrations(conn, schema, pid)]


def generate_project_token(_: Any, info: GraphQLResolveInfo, name: str, stage: str) -> str:
    ctx = context_of(info)
    ctx.verify(name, stage)
    with ctx.tenant.pool.connection() as conn:
        found = store.get_project(conn, ctx.tenant.management_schema, store.project_id(name, stage))
    if found is None:
        raise project_not_found(name, stage)
    return project_token(found.secrets)


def add_project(_: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
    ctx = context_of(info)
    name, stage = input["name"], input["stage"]
    ctx.verify(name, stage)
    validate_names(name, stage)
    schema = ctx.tenant.management_schema
    pid = store.project_id(name, stage)
    secrets = list(input.get("secrets") or [])
    try:
        with ctx.tenant.pool.connection() as conn, conn.transaction():
            if store.get_project(conn, schema, pid) is not None:
                raise project_exists(name, stage)
            created = store.insert_project(conn, schema, pid, secrets)
            store.insert_migration(
                conn,
                schema,
                store.Migration(
                    project_id=pid,
                    revision=1,
                    schema=Schema().to_json(),
                    status="SUCCESS",
                    applied=0,
                    rolled_back=0,
                    steps=[],
                    errors=[],
                    datamodel="",
                ),
            )
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(ctx.tenant.service_schema(pid))}")
    except psycopg.errors.UniqueViolation:
        raise project_exists(name, stage) from None
    return {
        "project": project_view(created, ""),
        "clientMutationId": input.get("clientMutationId"),
    }


def delete_project(_: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
    ctx = context_of(info)
    name, stage = input["name"], input["stage"]
    ctx.verify(name, stage)
    schema = ctx.tenant.management_schema
    pid = store.project_id(name, stage)
    with ctx.tenant.pool.connection() as conn, conn.transaction():
        found = store.get_project(conn, schema, pid, lock=True)
        if found is None:
            raise project_not_found(name, stage)
        last = store.last_successful_migration(conn, schema, pid)
        store.delete_project(conn, schema, pid)
        if not ctx.tenant.config.database.schema:
            conn.execute(f"DROP SCHEMA IF EXISTS {ident(ctx.tenant.service_schema(pid))} CASCADE")
    if ctx.usage is not None and ctx.usage.tenant is not None:
        ctx.usage.forget(ctx.tenant.config.name, pid)
    return {
        "project": project_view(found, last.datamodel if last else ""),
        "clientMutationId": input.get("clientMutationId"),
    }


def set_cloud_secret(_: Any, info: GraphQLResolveInfo, input: dict[str, Any]) -> dict[str, Any]:
    ctx = context_of(info)
    ctx.verify("", "")
    with ctx.tenant.pool.connection() as conn, conn.transaction():
        store.set_cloud_secret(conn, ctx.tenant.management_schema, input.get("secret"))
    return {"clientMutationId": input.get("clientMutationId")}


QUERIES: dict[str, Callable[..., Any]] = {
    "serverInfo": server_info,
    "listProjects": list_projects,
    "project": project,
    "migrationStatus": migration_status,
    "listMigrations": list_migrations,
    "generateProjectToken": generate_project_token,
}
MUTATIONS: dict[str, Callable[..., Any]] = {
    "addProject": add_project,
    "deleteProject": delete_project,
    "setCloudSecret": set_cloud_secret,
}
