"""Usage of services, as their servers measure it (`runtime.usage`), for the service page and the
Services tab. Always through the server's management API (`ManagementClient`), never its
tables: a private server's runtime and a self-hosted one answer the same way, and a server that
is not ours (a real Prisma 1 server has no `serviceUsage`) or does not answer is said so,
plainly, instead of breaking the page.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from servers import tokens
from servers.limits import sandbox_limits
from servers.management_api import ManagementError, NotManagementApi, PrismaError
from servers.models import Server, Service

WINDOWS = ("hour", "day", "week")
# Usage is read while a person waits for a page: a server slower than this is shown as
# unavailable rather than holding the page.
USAGE_TIMEOUT = 5.0
SUMMARY_TIMEOUT = 3.0
NOT_OURS = (
    "Usage is not available from this server: it does not measure usage (a Prisma server "
    "other than Refract's runtime)."
)


class UsageUnavailable(Exception):
    """The server cannot tell this service's usage now; the message says why, for the page."""


@dataclass(frozen=True)
class ServiceSummary:
    """A service's line on the Services tab."""

    requests_24h: int
    throttled_last_hour: int
    refused_last_hour: int
    storage_bytes: int | None
    cap_bytes: int | None

    @property
    def storage_share(self) -> float | None:
        if self.storage_bytes is None or not self.cap_bytes:
            return None
        return self.storage_bytes / self.cap_bytes

    @property
    def near_cap(self) -> bool:
        share = self.storage_share
        return share is not None and share >= 0.8

    @property
    def throttled(self) -> bool:
        return bool(self.throttled_last_hour or self.refused_last_hour)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests24h": self.requests_24h,
            "throttledLastHour": self.throttled_last_hour,
            "refusedLastHour": self.refused_last_hour,
            "storageBytes": self.storage_bytes,
            "capBytes": self.cap_bytes,
            "nearCap": self.near_cap,
            "throttled": self.throttled,
        }


def _cap_bytes(server: Server, reported: Any) -> int | None:
    """The storage cap: what the runtime reports, else the console's sandbox figure."""
    if isinstance(reported, int):
        return reported
    if server.kind == Server.Kind.SANDBOX:
        return sandbox_limits().storage_mb * 1024 * 1024
    return None


def _unavailable(error: ManagementError) -> UsageUnavailable:
    if isinstance(error, NotManagementApi):
        return UsageUnavailable(NOT_OURS)
    if isinstance(error, PrismaError):
        text = str(error)
        if "serviceUsage" in text or "usageSummary" in text or "UsageServiceInput" in text:
            return UsageUnavailable(NOT_OURS)
        if error.code == 4000:
            return UsageUnavailable("Nothing is deployed on the server for this service yet.")
        return UsageUnavailable(f"The server refused to tell this service's usage: {text}")
    return UsageUnavailable(f"The server did not answer: {error}")


def service_usage(service: Service, window: str) -> dict[str, Any]:
    """The service's usage over `window`, with a token for this service only. Raises
    `ValueError` for an unknown window and `UsageUnavailable` when the server cannot say."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    server = service.server
    if server.status != Server.Status.HEALTHY:
        raise UsageUnavailable(f"The server is {server.get_status_display().lower()}.")
    token = tokens.cluster_token(server, service.name, service.stage)
    client = server.management_client(token, timeout=USAGE_TIMEOUT)
    try:
        usage = client.service_usage(server.project_name(service.name), service.stage, window)
    except ManagementError as error:
        raise _unavailable(error) from None
    storage = usage.setdefault("storage", {})
    storage["capBytes"] = _cap_bytes(server, storage.get("capBytes"))
    usage["sandbox"] = server.kind == Server.Kind.SANDBOX
    if usage["sandbox"] and not isinstance(usage.get("limits"), dict):
        limits = sandbox_limits()
        usage["limits"] = {
            "requests": limits.requests,
            "windowSeconds": limits.window_seconds,
            "queue": limits.queue,
        }
    return usage


def summaries(services: list[Service]) -> dict[str, ServiceSummary | None]:
    """Each service's summary by id, None where its server did not tell: one call per server
    (all servers at once), whatever the number of services."""
    by_server: dict[Server, list[Service]] = defaultdict(list)
    for service in services:
        if service.server.status == Server.Status.HEALTHY:
            by_server[service.server].append(service)
    found: dict[str, ServiceSummary | None] = {str(s.id): None for s in services}

    def ask(server: Server) -> None:
        listed = by_server[server]
        client = server.management_client(tokens.server_token(server), timeout=SUMMARY_TIMEOUT)
        try:
            answers = client.usage_summary([(server.project_name(s.name), s.stage) for s in listed])
        except ManagementError:
            return  # shown as "—": the page does not depend on any one server
        for service, answer in zip(listed, answers, strict=True):
            found[str(service.id)] = ServiceSummary(
                requests_24h=int(answer.get("requests24h") or 0),
                throttled_last_hour=int(answer.get("throttledLastHour") or 0),
                refused_last_hour=int(answer.get("refusedLastHour") or 0),
                storage_bytes=answer.get("storageBytes"),
                cap_bytes=_cap_bytes(server, answer.get("capBytes")),
            )

    if by_server:
        with ThreadPoolExecutor(max_workers=min(8, len(by_server))) as pool:
            list(pool.map(ask, by_server))
    return found
