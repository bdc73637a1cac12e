"""The names the Prisma 1 CLI knows our servers by: its "clusters" (protocol reference 2.5-2.9,
4.3-4.7). The one place that maps servers to those names and back.

The CLI decides how to talk to a cloud cluster from its name alone (4.6):
`prisma-eu1` and `prisma-us1` are *shared*: services live at
`<origin>/<workspace>/<service>/<stage>` and the project is `<workspace>~<service>` (4.5).
Any other name is *private*: the CLI drops the workspace from URLs and uses the plain service
name as the project. A sandbox is a workspace's slice of a shared region runtime, which is
exactly the shared model, so a sandbox is offered under a shared name: the region configured
first in `SANDBOX_REGIONS` is `prisma-eu1`, the second `prisma-us1`.

The CLI knows no third shared name, and under any other name it would deploy to
`<origin>/<service>/<stage>` as project `<service>`, which the region routes to no workspace.
So sandboxes on a third or later region are left out of the CLI's list (logged once per
region); the console and the REST API still use them. Private and self-hosted servers keep
their own names, which for that reason may never be a shared one (`Server.clean`).

Consequences of the shared model, from the CLI's code: its interactive `deploy` dialog lists
only non-shared clusters (5), so a sandbox is reached with an endpoint in prisma.yml, as the
console shows it; and it never calls `addServiceToCloudDBIfMissing` for a shared cluster (2.8,
4.7), so CLI deploys to a sandbox reach the console through the periodic reconciliation.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:  # the model validates names with this module: no import at run time
    from servers.models import Server

# The CLI's built-in shared clusters (prisma-yml's Environment and parseEndpoint), in the
# order regions are given them.
SHARED_CLUSTER_NAMES = ("prisma-eu1", "prisma-us1")

log = logging.getLogger(__name__)


def is_shared_name(name: str) -> bool:
    """Whether the CLI would treat a cluster of this name as shared (case folded: a look-alike
    name is as confusing to a person)."""
    return name.lower() in SHARED_CLUSTER_NAMES


def shared_names() -> dict[str, str]:
    """Region name to the shared cluster name the CLI is offered it under, first two regions
    of `SANDBOX_REGIONS` (an ordered mapping) only."""
    return dict(zip(settings.SANDBOX_REGIONS, SHARED_CLUSTER_NAMES, strict=False))


def region_of(cluster_name: str) -> str | None:
    """The region a shared cluster name stands for, or None (not shared, or no such region)."""
    return next((r for r, name in shared_names().items() if name == cluster_name), None)


def cluster_name(server: Server) -> str | None:
    """The name the CLI knows the server by, or None when it cannot be offered to the CLI."""
    if server.kind != server.Kind.SANDBOX:
        # A row saved around `Server.clean` with a shared name would be deployed to the sandbox
        # way; it is not offered rather than offered wrong.
        return None if is_shared_name(server.name) else server.name
    name = shared_names().get(server.region)
    if name is None:
        _log_unoffered(server.region)
    return name


@lru_cache(maxsize=16)
def _log_unoffered(region: str) -> None:
    log.warning(
        "sandboxes on region %s are not offered to the Prisma 1 CLI: it knows only two shared"
        " cluster names (%s), given to the first two regions of SANDBOX_REGIONS",
        region,
        ", ".join(SHARED_CLUSTER_NAMES),
    )
