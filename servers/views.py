"""The console's servers pages: thin, every write through `servers.services`."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.views.workspaces import workspace_view
from servers import services
from servers.limits import sandbox_limits
from servers.models import Server, get_server


def _regions_free(membership: Membership) -> list[str]:
    taken = set(
        membership.workspace.servers.filter(kind=Server.Kind.SANDBOX)
        .exclude(status=Server.Status.FAILED)
        .values_list("region", flat=True)
    )
    return [name for name in settings.SANDBOX_REGIONS if name not in taken]


@workspace_view()
def server_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    servers = (
        Server.objects.for_user(request.user)
        .filter(workspace=workspace)
        .select_related("workspace")
    )
    return render(
        request,
        "workspaces/servers.html",
        {
            "membership": membership,
            "workspace": workspace,
            "servers": servers,
            "can_provision": membership.has_role(Role.ADMIN),
            "regions": list(settings.SANDBOX_REGIONS),
            "regions_free": _regions_free(membership),
            "limits": sandbox_limits(),
        },
    )


@workspace_view(min_role=Role.ADMIN)  # first: a stranger gets 404 whatever the method
@require_POST
def provision(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    region = request.POST.get("region") or ""
    if not region and len(settings.SANDBOX_REGIONS) == 1:
        region = next(iter(settings.SANDBOX_REGIONS))
    try:
        server = services.provision_sandbox(request.user, workspace, region, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect("accounts:servers", slug=workspace.slug)
    messages.success(request, f"Provisioning the sandbox on {server.region}.")
    return redirect("servers:detail", slug=workspace.slug, server_id=server.id)


@workspace_view()
def server_detail(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    server = get_server(request.user, membership.workspace.slug, server_id)
    return render(
        request,
        "servers/detail.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "server": server,
            "limits": sandbox_limits(),
        },
    )


@workspace_view()
def server_status(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    """The status fragment the detail page polls while the server is provisioning."""
    server = get_server(request.user, membership.workspace.slug, server_id)
    return render(request, "servers/_status.html", {"server": server})
