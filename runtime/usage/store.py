"""Where the counts of every runtime process meet: tables in the runtime's own management schema.

- `"UsageMinute"`: one row per server, service and minute (requests, operations, errors,
  throttled requests and their delay, refusals 1004 and 1003, a latency histogram, a storage
  sample and the last Throttled-By values).
- `"UsageOperation"`: one row per server, service, minute and operation (count, errors, a
  latency histogram), and `"UsageOperationHour"` the same per hour (written by the same
  flush), so a week's insights add up 168 rows per operation instead of 10,080;
  `"UsageDocument"` keeps each operation's document text once.
- `"UsageTotal"`: running totals per server and service since the runtime's database was
  created, never pruned, so Prometheus' counters only go up.

A flush is one statement (data-modifying CTEs): every process adds its rows with `ON CONFLICT DO
UPDATE`, so concurrent flushes from any number of processes add up. Histograms are `bigint[]`
of a fixed length (`counter.BUCKETS`), added element by element with plain SQL (`added`,
`summed`): an aggregate written as a SQL function costs microseconds a row, and the week's
operation insights add up hundreds of thousands of rows. Rows older than the retention are
pruned by whichever process flushes when its prune is due.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg import AsyncConnection, Connection, sql

from runtime.usage.counter import BUCKETS, Snapshot


def _q(text: str, schema: str) -> sql.Composed:
    """`text` with `{s}` bound to the management schema (an identifier, never spliced text),
    `{added}` to the element-wise sum of two histograms and `{summed}` to their aggregate."""
    return sql.SQL(text).format(s=sql.Identifier(schema), added=ADDED, summed=SUMMED_RECORDS)


def _elements(template: str) -> sql.Composed:
    parts = [sql.SQL(template.format(i=i)) for i in range(1, BUCKETS + 1)]
    return sql.SQL("ARRAY[{}]::bigint[]").format(sql.SQL(", ").join(parts))


# The two histograms of an upsert added element by element, and a column's histograms summed
# over the rows of a GROUP BY (`"latency"` or `o."latency"`: the reads name it unqualified).
ADDED = _elements('coalesce(t."latency"[{i}], 0) + coalesce(excluded."latency"[{i}], 0)')
SUMMED = _elements('coalesce(sum("latency"[{i}]), 0)')
SUMMED_RECORDS = _elements('coalesce(sum(r."latency"[{i}]), 0)')


_TABLES = """
CREATE TABLE IF NOT EXISTS {s}."UsageMinute" (
  "server" text NOT NULL, "service" text NOT NULL, "minute" timestamptz NOT NULL,
  "requests" bigint NOT NULL DEFAULT 0, "operations" bigint NOT NULL DEFAULT 0,
  "errors" bigint NOT NULL DEFAULT 0, "throttled" bigint NOT NULL DEFAULT 0,
  "delayMs" bigint NOT NULL DEFAULT 0, "delayMaxMs" bigint NOT NULL DEFAULT 0,
  "refused" bigint NOT NULL DEFAULT 0, "storageRefused" bigint NOT NULL DEFAULT 0,
  "latencySumMs" double precision NOT NULL DEFAULT 0, "latency" bigint[] NOT NULL,
  "storageBytes" bigint, "throttledBy" bigint[] NOT NULL DEFAULT '{{}}',
  PRIMARY KEY ("server", "service", "minute"));
CREATE INDEX IF NOT EXISTS "UsageMinute_minute" ON {s}."UsageMinute" ("minute");
CREATE TABLE IF NOT EXISTS {s}."UsageOperation" (
  "server" text NOT NULL, "service" text NOT NULL, "minute" timestamptz NOT NULL,
  "key" text NOT NULL, "count" bigint NOT NULL DEFAULT 0, "errors" bigint NOT NULL DEFAULT 0,
  "latencySumMs" double precision NOT NULL DEFAULT 0, "latency" bigint[] NOT NULL,
  PRIMARY KEY ("server", "service", "minute", "key"));
CREATE INDEX IF NOT EXISTS "UsageOperation_minute" ON {s}."UsageOperation" ("minute");
CREATE TABLE IF NOT EXISTS {s}."UsageOperationHour" (
  "server" text NOT NULL, "service" text NOT NULL, "hour" timestamptz NOT NULL,
  "key" text NOT NULL, "count" bigint NOT NULL DEFAULT 0, "errors" bigint NOT NULL DEFAULT 0,
  "latencySumMs" double precision NOT NULL DEFAULT 0, "latency" bigint[] NOT NULL,
  PRIMARY KEY ("server", "service", "hour", "key"));
CREATE INDEX IF NOT EXISTS "UsageOperationHour_hour" ON {s}."UsageOperationHour" ("hour");
CREATE TABLE IF NOT EXISTS {s}."UsageDocument" (
  "server" text NOT NULL, "service" text NOT NULL, "key" text NOT NULL, "name" text,
  "document" text NOT NULL, PRIMARY KEY ("server", "service", "key"));
CREATE TABLE IF NOT EXISTS {s}."UsageTotal" (
  "server" text NOT NULL, "service" text NOT NULL,
  "requests" bigint NOT NULL DEFAULT 0, "operations" bigint NOT NULL DEFAULT 0,
  "errors" bigint NOT NULL DEFAULT 0, "throttled" bigint NOT NULL DEFAULT 0,
  "delayMs" bigint NOT NULL DEFAULT 0, "refused" bigint NOT NULL DEFAULT 0,
  "storageRefused" bigint NOT NULL DEFAULT 0,
  "latencySumMs" double precision NOT NULL DEFAULT 0, "latency" bigint[] NOT NULL,
  PRIMARY KEY ("server", "service"));
"""


def ensure_tables(conn: Connection, schema: str) -> None:
    """Create the usage tables if missing (under the lock `store.ensure_schema` takes)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(1000)")
        conn.execute(_q(_TABLES, schema))


_FLUSH = """
WITH minutes AS (
  INSERT INTO {s}."UsageMinute" AS t ("server", "service", "minute", "requests", "operations",
    "errors", "throttled", "delayMs", "delayMaxMs", "refused", "storageRefused", "latencySumMs",
    "latency", "storageBytes", "throttledBy")
  SELECT r."server", r."service", to_timestamp(r."minute" * 60), r."requests", r."operations",
    r."errors", r."throttled", r."delayMs", r."delayMaxMs", r."refused", r."storageRefused",
    r."latencySumMs", r."latency", r."storageBytes", r."throttledBy"
  FROM jsonb_to_recordset(%(minutes)s::jsonb) AS r("server" text, "service" text,
    "minute" bigint, "requests" bigint, "operations" bigint, "errors" bigint,
    "throttled" bigint, "delayMs" bigint, "delayMaxMs" bigint, "refused" bigint,
    "storageRefused" bigint, "latencySumMs" double precision, "latency" bigint[],
    "storageBytes" bigint, "throttledBy" bigint[])
  ON CONFLICT ("server", "service", "minute") DO UPDATE SET
    "requests" = t."requests" + excluded."requests",
    "operations" = t."operations" + excluded."operations",
    "errors" = t."errors" + excluded."errors",
    "throttled" = t."throttled" + excluded."throttled",
    "delayMs" = t."delayMs" + excluded."delayMs",
    "delayMaxMs" = greatest(t."delayMaxMs", excluded."delayMaxMs"),
    "refused" = t."refused" + excluded."refused",
    "storageRefused" = t."storageRefused" + excluded."storageRefused",
    "latencySumMs" = t."latencySumMs" + excluded."latencySumMs",
    "latency" = {added},
    "storageBytes" = coalesce(excluded."storageBytes", t."storageBytes"),
    "throttledBy" = (t."throttledBy" || excluded."throttledBy")[
      greatest(1, cardinality(t."throttledBy") + cardinality(excluded."throttledBy") - 9):]
  RETURNING 1
), totals AS (
  INSERT INTO {s}."UsageTotal" AS t ("server", "service", "requests", "operations", "errors",
    "throttled", "delayMs", "refused", "storageRefused", "latencySumMs", "latency")
  SELECT r."server", r."service", r."requests", r."operations", r."errors", r."throttled",
    r."delayMs", r."refused", r."storageRefused", r."latencySumMs", r."latency"
  FROM jsonb_to_recordset(%(totals)s::jsonb) AS r("server" text, "service" text,
    "requests" bigint, "operations" bigint, "errors" bigint, "throttled" bigint,
    "delayMs" bigint, "refused" bigint, "storageRefused" bigint,
    "latencySumMs" double precision, "latency" bigint[])
  ON CONFLICT ("server", "service") DO UPDATE SET
    "requests" = t."requests" + excluded."requests",
    "operations" = t."operations" + excluded."operations",
    "errors" = t."errors" + excluded."errors",
    "throttled" = t."throttled" + excluded."throttled",
    "delayMs" = t."delayMs" + excluded."delayMs",
    "refused" = t."refused" + excluded."refused",
    "storageRefused" = t."storageRefused" + excluded."storageRefused",
    "latencySumMs" = t."latencySumMs" + excluded."latencySumMs",
    "latency" = {added}
  RETURNING 1
), hours AS (
  INSERT INTO {s}."UsageOperationHour" AS t ("server", "service", "hour", "key", "count",
    "errors", "latencySumMs", "latency")
  SELECT r."server", r."service", date_trunc('hour', to_timestamp(r."minute" * 60)), r."key",
    sum(r."count"), sum(r."errors"), sum(r."latencySumMs"), {summed}
  FROM jsonb_to_recordset(%(operations)s::jsonb) AS r("server" text, "service" text,
    "minute" bigint, "key" text, "count" bigint, "errors" bigint,
    "latencySumMs" double precision, "latency" bigint[])
  GROUP BY 1, 2, 3, 4
  ON CONFLICT ("server", "service", "hour", "key") DO UPDATE SET
    "count" = t."count" + excluded."count",
    "errors" = t."errors" + excluded."errors",
    "latencySumMs" = t."latencySumMs" + excluded."latencySumMs",
    "latency" = {added}
  RETURNING 1
), documents AS (
  INSERT INTO {s}."UsageDocument" ("server", "service", "key", "name", "document")
  SELECT r."server", r."service", r."key", r."name", r."document"
  FROM jsonb_to_recordset(%(documents)s::jsonb) AS r("server" text, "service" text,
    "key" text, "name" text, "document" text)
  ON CONFLICT DO NOTHING
  RETURNING 1
)
INSERT INTO {s}."UsageOperation" AS t ("server", "service", "minute", "key", "count", "errors",
  "latencySumMs", "latency")
SELECT r."server", r."service", to_timestamp(r."minute" * 60), r."key", r."count", r."errors",
  r."latencySumMs", r."latency"
FROM jsonb_to_recordset(%(operations)s::jsonb) AS r("server" text, "service" text,
  "minute" bigint, "key" text, "count" bigint, "errors" bigint,
  "latencySumMs" double precision, "latency" bigint[])
ON CONFLICT ("server", "service", "minute", "key") DO UPDATE SET
  "count" = t."count" + excluded."count",
  "errors" = t."errors" + excluded."errors",
  "latencySumMs" = t."latencySumMs" + excluded."latencySumMs",
  "latency" = {added}
"""

_TOTAL_FIELDS = (
    "requests",
    "operations",
    "errors",
    "throttled",
    "delayMs",
    "refused",
    "storageRefused",
    "latencySumMs",
)


def flush_parameters(
    snapshot: Snapshot, storage: dict[tuple[str, str], int]
) -> dict[str, str] | None:
    """The flush statement's four JSON parameters, or None when there is nothing to write.
    `storage`: the storage samples (bytes) by server and service, where known."""
    minutes = []
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for (server, service, minute), row in snapshot.services.items():
        if not row.requests:
            continue
        values = {
            "requests": row.requests,
            "operations": row.operations,
            "errors": row.errors,
            "throttled": row.throttled,
            "delayMs": row.delay_ms,
            "refused": row.refused,
            "storageRefused": row.storage_refused,
            "latencySumMs": row.latency_sum_ms,
        }
        minutes.append(
            {
                "server": server,
                "service": service,
                "minute": minute,
                **values,
                "delayMaxMs": row.delay_max_ms,
                "latency": row.latency,
                "storageBytes": storage.get((server, service)),
                "throttledBy": row.delays,
            }
        )
        total = totals.setdefault(
            (server, service),
            {"server": server, "service": service, "latency": [0] * BUCKETS}
            | dict.fromkeys(_TOTAL_FIELDS, 0),
        )
        for name, value in values.items():
            total[name] += value
        total["latency"] = [a + b for a, b in zip(total["latency"], row.latency, strict=True)]
    if not minutes:
        return None
    operations = []
    documents = {}
    for (server, service, minute, key), op in snapshot.operations.items():
        operations.append(
            {
                "server": server,
                "service": service,
                "minute": minute,
                "key": key,
                "count": op.count,
                "errors": op.errors,
                "latencySumMs": op.latency_sum_ms,
                "latency": op.latency,
            }
        )
        documents[(server, service, key)] = {
            "server": server,
            "service": service,
            "key": key,
            "name": op.operation.name,
            "document": op.operation.document,
        }
    return {
        "minutes": orjson.dumps(minutes).decode(),
        "totals": orjson.dumps(list(totals.values())).decode(),
        "documents": orjson.dumps(list(documents.values())).decode(),
        "operations": orjson.dumps(operations).decode(),
    }


async def flush(conn: AsyncConnection, schema: str, parameters: dict[str, str]) -> None:
    """Add a snapshot's rows: one statement, one round trip (autocommit)."""
    await conn.execute(_q(_FLUSH, schema), parameters)


_PRUNE = """
WITH gone AS (DELETE FROM {s}."UsageMinute" WHERE "minute" < %(before)s RETURNING 1),
ops AS (DELETE FROM {s}."UsageOperation" WHERE "minute" < %(before)s RETURNING 1),
hours AS (DELETE FROM {s}."UsageOperationHour" WHERE "hour" < %(before)s RETURNING 1)
DELETE FROM {s}."UsageDocument" d WHERE NOT EXISTS (
  SELECT 1 FROM {s}."UsageOperation" o WHERE o."server" = d."server"
  AND o."service" = d."service" AND o."key" = d."key" AND o."minute" >= %(before)s)
"""


async def prune(conn: AsyncConnection, schema: str, before: datetime) -> None:
    """Drop minute rows older than `before` and the documents no kept row names."""
    await conn.execute(_q(_PRUNE, schema), {"before": before})


def now() -> datetime:
    return datetime.now(UTC)


_FORGET = """
WITH minutes AS (
  DELETE FROM {s}."UsageMinute" WHERE "server" = %(server)s AND "service" = %(service)s
  RETURNING 1
), operations AS (
  DELETE FROM {s}."UsageOperation" WHERE "server" = %(server)s AND "service" = %(service)s
  RETURNING 1
), hours AS (
  DELETE FROM {s}."UsageOperationHour" WHERE "server" = %(server)s AND "service" = %(service)s
  RETURNING 1
)
DELETE FROM {s}."UsageDocument" WHERE "server" = %(server)s AND "service" = %(service)s
"""


def forget_service(conn: Connection, schema: str, server: str, service: str) -> None:
    """Drop a deleted service's usage, so a new service of the same name starts from nothing.
    Its running totals stay: Prometheus' counters must not go down."""
    conn.execute(_q(_FORGET, schema), {"server": server, "service": service})
