"""Refract's usage fields on the management API: `serviceUsage` (one service's graphs and
operation insights over an hour, a day or a week) and `usageSummary` (several services at a
glance, one call per server for the console's overview).

Authorised as every management call: the caller's grants must cover each service asked for,
so a token scoped to one service cannot read another's usage. The counts are read from the
runtime's own database (`runtime.usage`), keyed by this server's name: a registered server's
usage is kept by the runtime, never in its user's database.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from runtime import quota, store
from runtime.errors import PrismaError, project_not_found
from runtime.management.context import ManagementContext, context_of
from runtime.usage import report
from runtime.usage.store import now

MAX_SUMMARY_SERVICES = 1000
# What each schema holds on disk, for many schemas in one query (`quota.FILES_SQL` for one).
_SCHEMA_SIZES = """
SELECT n.nspname, coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'm')
GROUP BY n.nspname
"""


def _recorder(ctx: ManagementContext) -> Any:
    usage = ctx.usage
    if usage is None or usage.tenant is None:
        raise PrismaError(1001, "This server does not count usage.")
    return usage


def service_usage(
    _: Any, info: GraphQLResolveInfo, name: str, stage: str, window: str
) -> dict[str, Any]:
    ctx = context_of(info)
    ctx.verify(name, stage)
    chosen = report.WINDOWS.get(window)
    if chosen is None:
        raise PrismaError(
            1001, f"Unknown window {window!r}: use one of {', '.join(report.WINDOWS)}."
        )
    usage = _recorder(ctx)
    pid = store.project_id(name, stage)
    tenant = ctx.tenant
    with tenant.pool.connection() as conn:
        if store.get_project(conn, tenant.management_schema, pid) is None:
            raise project_not_found(name, stage)
        row = conn.execute(quota.FILES_SQL, [tenant.service_schema(pid)]).fetchone()
    storage_now = int(row[0]) if row and row[0] is not None else 0
    with usage.tenant.pool.connection() as conn:
        answer = report.service_usage(conn, usage.schema, tenant.config.name, pid, chosen, now())
    sandbox = tenant.config.sandbox
    if sandbox is not None:  # what the page explains a throttled service with
        answer["limits"] = {
            "requests": sandbox.rate,
            "windowSeconds": sandbox.per_seconds,
            "queue": sandbox.max_waiting,
        }
    answer["storage"] = {
        **answer["storage"],
        "bytesNow": storage_now,
        "capBytes": sandbox.storage_bytes if sandbox is not None else None,
    }
    return answer


def usage_summary(
    _: Any, info: GraphQLResolveInfo, services: list[dict[str, str]]
) -> list[dict[str, Any]]:
    ctx = context_of(info)
    if len(services) > MAX_SUMMARY_SERVICES:
        raise PrismaError(
            1001, f"usageSummary takes at most {MAX_SUMMARY_SERVICES} services per call."
        )
    for item in services:
        ctx.verify(item["name"], item["stage"])
    usage = _recorder(ctx)
    pids = [store.project_id(item["name"], item["stage"]) for item in services]
    with usage.tenant.pool.connection() as conn:
        found = report.summary(conn, usage.schema, ctx.tenant.config.name, pids, now())
    tenant = ctx.tenant
    schemas = {pid: tenant.service_schema(pid) for pid in pids}
    with tenant.pool.connection() as conn:
        sizes = dict(conn.execute(_SCHEMA_SIZES, [sorted(set(schemas.values()))]).fetchall())
    sandbox = tenant.config.sandbox
    return [
        {
            "name": item["name"],
            "stage": item["stage"],
            **found[pid],
            "storageBytes": sizes.get(schemas[pid], found[pid]["storageBytes"]),
            "capBytes": sandbox.storage_bytes if sandbox is not None else None,
        }
        for item, pid in zip(services, pids, strict=True)
    ]
