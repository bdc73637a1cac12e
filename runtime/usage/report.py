"""Reading the shared counts back: a service's series and operation insights over a window (the
management API's `serviceUsage`), a summary of several services (`usageSummary`), and the
running totals `/metrics` reports.

Percentiles come from the fixed latency buckets: the bucket holding the rank, interpolated
linearly inside it (above the last bound, the last bound), as Prometheus' `histogram_quantile`
does, so the console and a Prometheus server agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import Connection, sql

from runtime.usage.counter import LATENCY_BOUNDS_MS
from runtime.usage.store import SUMMED


@dataclass(frozen=True)
class Window:
    """A window the console shows: its length and the width of one point of its series."""

    name: str
    length: timedelta
    bucket: timedelta


WINDOWS = {
    "hour": Window("hour", timedelta(hours=1), timedelta(minutes=1)),
    "day": Window("day", timedelta(days=1), timedelta(minutes=15)),
    "week": Window("week", timedelta(days=7), timedelta(hours=1)),
}
MAX_INSIGHTS = 50  # operations listed, slowest first


def quantile(q: float, histogram: list[int] | None) -> float | None:
    """The q-quantile in ms of a latency histogram (None when it is empty)."""
    if not histogram:
        return None
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index >= len(LATENCY_BOUNDS_MS):
                return float(LATENCY_BOUNDS_MS[-1])
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * (rank - seen) / count, 3)
        seen += count
    return float(LATENCY_BOUNDS_MS[-1])


def _q(text: str, schema: str) -> sql.Composed:
    return sql.SQL(text).format(s=sql.Identifier(schema), summed=SUMMED)


_SERIES = """
SELECT date_bin(%(bucket)s, "minute", %(origin)s) AS b, sum("requests"), sum("operations"),
  sum("errors"), sum("throttled"), sum("delayMs"), max("delayMaxMs"), sum("refused"),
  sum("storageRefused"), {summed}, max("storageBytes")
FROM {s}."UsageMinute"
WHERE "server" = %(server)s AND "service" = %(service)s AND "minute" >= %(origin)s
GROUP BY b ORDER BY b
"""
_RECENT_DELAYS = """
SELECT "minute", "throttledBy", "refused" FROM {s}."UsageMinute"
WHERE "server" = %(server)s AND "service" = %(service)s AND "minute" >= %(since)s
  AND ("throttled" > 0 OR "refused" > 0)
ORDER BY "minute" DESC LIMIT 10
"""
_LAST_HOUR = """
SELECT coalesce(sum("throttled"), 0), coalesce(sum("refused"), 0),
  coalesce(sum("storageRefused"), 0)
FROM {s}."UsageMinute"
WHERE "server" = %(server)s AND "service" = %(service)s AND "minute" >= %(since)s
"""
_LAST_STORAGE = """
SELECT "storageBytes", "minute" FROM {s}."UsageMinute"
WHERE "server" = %(server)s AND "service" = %(service)s AND "storageBytes" IS NOT NULL
ORDER BY "minute" DESC LIMIT 1
"""
_INSIGHTS = """
SELECT a."key", d."name", d."document", a."count", a."errors", a."latencySumMs", a."latency"
FROM (
  SELECT "key", sum("count") AS "count", sum("errors") AS "errors",
    sum("latencySumMs") AS "latencySumMs", {summed} AS "latency"
  FROM (
    SELECT "key", "count", "errors", "latencySumMs", "latency" FROM {s}."UsageOperation"
    WHERE "server" = %(server)s AND "service" = %(service)s AND "minute" >= %(origin)s
      AND ("minute" < %(first_hour)s OR "minute" >= %(last_hour)s)
    UNION ALL
    SELECT "key", "count", "errors", "latencySumMs", "latency" FROM {s}."UsageOperationHour"
    WHERE "server" = %(server)s AND "service" = %(service)s
      AND "hour" >= %(first_hour)s AND "hour" < %(last_hour)s
  ) o
  GROUP BY "key"
) a
LEFT JOIN {s}."UsageDocument" d
  ON d."server" = %(server)s AND d."service" = %(service)s AND d."key" = a."key"
"""


def service_usage(
    conn: Connection, schema: str, server: str, service: str, window: Window, now: datetime
) -> dict[str, Any]:
    """The service's series over the window (oldest first, one point per bucket, empty buckets
    included), its recent Throttled-By values and its operations, slowest (p95) first."""
    origin = _floor(now - window.length + window.bucket, window.bucket)
    params = {"bucket": window.bucket, "origin": origin, "server": server, "service": service}
    rows = {r[0]: r for r in conn.execute(_q(_SERIES, schema), params)}
    series: dict[str, list[Any]] = {
        name: []
        for name in (
            "time",
            "requests",
            "operations",
            "errors",
            "throttled",
            "delayMs",
            "delayMaxMs",
            "refused",
            "storageRefused",
            "p50",
            "p95",
            "storageBytes",
        )
    }
    point = origin
    totals = dict.fromkeys(("requests", "errors", "throttled", "refused", "storageRefused"), 0)
    histogram: list[int] = []
    while point <= now:
        row = rows.get(point)
        series["time"].append(int(point.timestamp()))
        if row is None:
            for name in list(series)[1:]:
                series[name].append(None if name in ("p50", "p95", "storageBytes") else 0)
        else:
            (_, requests, operations, errors, throttled, delay, delay_max, refused) = row[:8]
            storage_refused, latency, storage = row[8:]
            values = [requests, operations, errors, throttled, delay, delay_max, refused]
            for name, value in zip(list(series)[1:8], values, strict=True):
                series[name].append(int(value))
            series["storageRefused"].append(int(storage_refused))
            series["p50"].append(quantile(0.5, latency))
            series["p95"].append(quantile(0.95, latency))
            series["storageBytes"].append(int(storage) if storage is not None else None)
            for name, value in (
                ("requests", requests),
                ("errors", errors),
                ("throttled", throttled),
                ("refused", refused),
                ("storageRefused", storage_refused),
            ):
                totals[name] += int(value)
            histogram = [
                a + b for a, b in zip(histogram or [0] * len(latency), latency, strict=True)
            ]
        point += window.bucket
    last_hour = {"server": server, "service": service, "since": now - timedelta(hours=1)}
    recent = conn.execute(_q(_RECENT_DELAYS, schema), last_hour).fetchall()
    hour_row = conn.execute(_q(_LAST_HOUR, schema), last_hour).fetchone()
    throttled_hour, refused_hour, storage_refused_hour = (int(v) for v in hour_row or (0, 0, 0))
    last_storage = conn.execute(
        _q(_LAST_STORAGE, schema), {"server": server, "service": service}
    ).fetchone()
    return {
        "window": window.name,
        "bucketSeconds": int(window.bucket.total_seconds()),
        "now": int(now.timestamp()),
        "series": series,
        "totals": {**totals, "p50": quantile(0.5, histogram), "p95": quantile(0.95, histogram)},
        "throttling": {
            "lastHour": {
                "throttled": throttled_hour,
                "refused": refused_hour,
                "storageRefused": storage_refused_hour,
            },
            "recentThrottledBy": [v for r in recent for v in reversed(r[1])][:10],
            "lastAt": int(recent[0][0].timestamp()) if recent else None,
        },
        "storage": {
            "bytes": int(last_storage[0]) if last_storage else None,
            "at": int(last_storage[1].timestamp()) if last_storage else None,
        },
        "operations": insights(conn, schema, server, service, origin, now),
        "latencyBoundsMs": list(LATENCY_BOUNDS_MS),
    }


def insights(
    conn: Connection, schema: str, server: str, service: str, origin: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Per operation since `origin`: count, errors, mean, p50 and p95, slowest first. The whole
    hours of the window come from the hourly rows, its two ends from the minute rows."""
    hour = timedelta(hours=1)
    first_hour = _floor(origin, hour)
    if first_hour < origin:
        first_hour += hour
    last_hour = max(_floor(now, hour), first_hour)
    params = {
        "server": server,
        "service": service,
        "origin": origin,
        "first_hour": first_hour,
        "last_hour": last_hour,
    }
    found = []
    for key, name, document, count, errors, latency_sum, latency in conn.execute(
        _q(_INSIGHTS, schema), params
    ):
        found.append(
            {
                "key": key,
                "name": name,
                "document": document or "",
                "count": int(count),
                "errors": int(errors),
                "meanMs": round(float(latency_sum) / int(count), 3) if count else None,
                "p50": quantile(0.5, latency),
                "p95": quantile(0.95, latency),
            }
        )
    found.sort(key=lambda op: (-(op["p95"] or 0), -(op["meanMs"] or 0), -op["count"]))
    return found[:MAX_INSIGHTS]


_SUMMARY = """
SELECT "service", sum("requests"),
  sum("throttled") FILTER (WHERE "minute" >= %(hour)s),
  sum("refused") FILTER (WHERE "minute" >= %(hour)s),
  sum("storageRefused") FILTER (WHERE "minute" >= %(hour)s),
  (array_agg("storageBytes" ORDER BY "minute" DESC) FILTER (WHERE "storageBytes" IS NOT NULL))[1]
FROM {s}."UsageMinute"
WHERE "server" = %(server)s AND "service" = ANY(%(services)s) AND "minute" >= %(day)s
GROUP BY "service"
"""


def summary(
    conn: Connection, schema: str, server: str, services: list[str], now: datetime
) -> dict[str, dict[str, Any]]:
    """Requests over the last 24 h, throttling over the last hour and the last storage sample,
    for each of `services` (those with no requests in 24 h are all zeros): one query."""
    params = {
        "server": server,
        "services": services,
        "hour": now - timedelta(hours=1),
        "day": now - timedelta(days=1),
    }
    found = {
        row[0]: {
            "requests24h": int(row[1] or 0),
            "throttledLastHour": int(row[2] or 0),
            "refusedLastHour": int(row[3] or 0),
            "storageRefusedLastHour": int(row[4] or 0),
            "storageBytes": int(row[5]) if row[5] is not None else None,
        }
        for row in conn.execute(_q(_SUMMARY, schema), params)
    }
    empty = {
        "requests24h": 0,
        "throttledLastHour": 0,
        "refusedLastHour": 0,
        "storageRefusedLastHour": 0,
        "storageBytes": None,
    }
    return {service: found.get(service, dict(empty)) for service in services}


_TOTALS = """
SELECT "server", "service", "requests", "operations", "errors", "throttled", "delayMs",
  "refused", "storageRefused", "latencySumMs", "latency"
FROM {s}."UsageTotal" ORDER BY "server", "requests" DESC, "service"
"""


def totals(conn: Connection, schema: str) -> list[tuple[Any, ...]]:
    """Every service's running totals, busiest first within each server."""
    return conn.execute(_q(_TOTALS, schema)).fetchall()


def _floor(moment: datetime, bucket: timedelta) -> datetime:
    """`moment` rounded down to a multiple of `bucket` since the Unix epoch (as date_bin's
    origin must be a bucket boundary for the series' points to line up)."""
    seconds = int(bucket.total_seconds())
    stamp = int(moment.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(stamp, tz=moment.tzinfo)
