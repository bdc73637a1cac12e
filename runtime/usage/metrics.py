"""`GET /metrics`: the runtime's usage in Prometheus' text format (`prometheus_client`).

The figures are the shared running totals (`"UsageTotal"`), read when Prometheus scrapes, so
any runtime process answers for every process of the runtime (prometheus_client's own
multi-process mode shares files on one host; these totals are shared across hosts too). Labels
are `server` and `service` (`name/stage`) only: operation names never become labels. Each
server's busiest `max_services` services get their own label; the rest are added up under
`service="other"`, so a sandbox of thousands of services keeps a bounded number of series.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime import envelope
from runtime.usage import report
from runtime.usage.counter import BUCKETS, LATENCY_BOUNDS_MS, OTHER

if TYPE_CHECKING:
    from runtime.config import UsageConfig
    from runtime.envelope import Send
    from runtime.tenants import Tenant

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (column index in `report.totals` rows, metric name, help, scale)
_COUNTERS = (
    (2, "refract_requests", "Requests to a service's endpoints.", 1.0),
    (3, "refract_operations", "GraphQL operations (each of a batch counts).", 1.0),
    (4, "refract_errors", "Requests answered with an error.", 1.0),
    (5, "refract_throttled_requests", "Requests the sandbox throttle delayed.", 1.0),
    (6, "refract_throttle_delay_seconds", "Time requests waited for the throttle.", 0.001),
    (7, "refract_refused_requests", "Requests the throttle refused (code 1004).", 1.0),
    (8, "refract_storage_refused_writes", "Writes refused at the storage cap (code 1003).", 1.0),
)


def service_label(project_id: str) -> str:
    """`name/stage` for a project id `name$stage` (`workspace~name$stage` on sandboxes)."""
    name, _, stage = project_id.rpartition("$")
    return f"{name}/{stage}" if name else project_id


def server_label(server: str) -> str:
    return "default" if server == "_default" else server


def bounded(rows: list[tuple[Any, ...]], max_services: int) -> list[tuple[Any, ...]]:
    """Each server's busiest `max_services` rows as they are (rows come busiest first per
    server), the rest added up into one row per server named `other`."""
    kept: list[tuple[Any, ...]] = []
    others: dict[str, list[Any]] = {}
    seen: dict[str, int] = {}
    for row in rows:
        server = row[0]
        seen[server] = seen.get(server, 0) + 1
        if seen[server] <= max_services:
            kept.append(row)
            continue
        folded = others.setdefault(server, [server, OTHER, *([0] * 8), [0] * BUCKETS])
        for index in range(2, 10):
            folded[index] += row[index]
        folded[10] = [a + b for a, b in zip(folded[10], row[10], strict=True)]
    return kept + [tuple(row) for row in others.values()]


class UsageCollector(Collector):
    """Reads the totals on each scrape through `read` (a callable returning their rows)."""

    def __init__(self, read: Any, max_services: int) -> None:
        self.read = read
        self.max_services = max_services

    def collect(self) -> Iterator[Metric]:
        rows = bounded(self.read(), self.max_services)
        labels = ["server", "service"]
        for index, name, help_text, scale in _COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=labels)
            for row in rows:
                family.add_metric([server_label(row[0]), _label(row[1])], float(row[index]) * scale)
            yield family
        histogram = HistogramMetricFamily(
            "refract_request_duration_seconds",
            "Time from admission (after any throttle wait) to the answer.",
            labels=labels,
        )
        for row in rows:
            cumulative = 0
            buckets = []
            for bound, count in zip((*LATENCY_BOUNDS_MS, float("inf")), row[10], strict=True):
                cumulative += int(count)
                le = "+Inf" if bound == float("inf") else repr(bound / 1000)
                buckets.append((le, cumulative))
            histogram.add_metric(
                [server_label(row[0]), _label(row[1])], buckets, float(row[9]) / 1000
            )
        yield histogram


def _label(service: str) -> str:
    return OTHER if service == OTHER else service_label(service)


def render(read: Any, max_services: int) -> bytes:
    """The text exposition of the totals `read` returns (blocking: call it in a thread)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(UsageCollector(read, max_services))
    return generate_latest(registry)


def authorised(token: str | None, authorization: str | None) -> bool:
    """Whether a scrape may read the metrics: any, without a configured token; otherwise
    `Authorization: Bearer <token>` (compared in constant time)."""
    if token is None:
        return True
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[len("Bearer ") :].encode(), token.encode())


async def serve(
    config: UsageConfig, tenant: Tenant, headers: dict[str, str], send: Send, request_id: str
) -> None:
    """`GET /metrics` on any host: 401 without the configured token, else the exposition of
    the totals kept in `tenant`'s (the runtime's own server's) management schema."""
    if not authorised(config.metrics_token, headers.get("authorization")):
        answer = {"error": "GET /metrics needs `Authorization: Bearer <metrics.token>`"}
        await envelope.respond_json(send, 401, answer, request_id, cors=False)
        return

    def read() -> list[tuple[Any, ...]]:
        with tenant.pool.connection() as conn:
            return report.totals(conn, tenant.management_schema)

    body = await asyncio.to_thread(render, read, config.metrics_services)
    await envelope.respond(send, 200, body, CONTENT_TYPE, request_id, cors=False)
