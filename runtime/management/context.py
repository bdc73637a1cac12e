"""What a management resolver needs: the tenant, the caller's token, and the request id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from graphql import GraphQLResolveInfo

from runtime.auth import Listing, management_listing, verify_management
from runtime.tenants import Tenant

if TYPE_CHECKING:
    from runtime.usage import UsageRecorder


@dataclass
class ManagementContext:
    tenant: Tenant
    authorization: str | None
    request_id: str
    usage: UsageRecorder | None = None  # the runtime's usage counts (`serviceUsage`)

    def verify(self, name: str, stage: str) -> None:
        verify_management(self.tenant.config.auth, self.authorization, name, stage)

    def listing(self) -> Listing:
        """Which projects `listProjects` shows this caller (all with `*/*`)."""
        return management_listing(self.tenant.config.auth, self.authorization)


def context_of(info: GraphQLResolveInfo) -> ManagementContext:
    return info.context
