"""The limits every sandbox service has, shown in the console and the API.

Prisma Cloud's users learned of its throttling only by running into it (prisma1 #1863,
#3660), so the limits are on the page. The operator may set `SANDBOX_LIMITS` (any of the keys
below); otherwise the demo servers' figures apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class SandboxLimits:
    requests: int = 10  # per `window_seconds`, per service
    window_seconds: int = 10
    queue: int = 25  # requests waiting beyond the rate; more are refused at once
    storage_mb: int = 100  # per service


def sandbox_limits() -> SandboxLimits:
    return SandboxLimits(**getattr(settings, "SANDBOX_LIMITS", {}))
