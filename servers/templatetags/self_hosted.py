"""What the self-hosted server panel needs beside the server page's own context."""

from __future__ import annotations

from django import template

from accounts.models import Membership, Role
from servers import self_hosted
from servers.models import Server

register = template.Library()


@register.simple_tag
def self_hosted_panel(server: Server, membership: Membership) -> dict[str, object]:
    """The configuration to paste (None for a server connected with a secret) and whether
    the viewer may check the connection and rotate keys (admins and owners)."""
    return {
        "config": self_hosted.configuration(server),
        "can_manage": membership.has_role(Role.ADMIN),
        "uses_secret": not server.private_key and bool(server.management_secret),
        "rotating": bool(server.next_public_key_pem),
    }
