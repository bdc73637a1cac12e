"""The console's pages for self-hosted servers: thin, every write through
`servers.self_hosted`. A server is reached only through `get_server`, so another workspace's
ids are 404 everywhere; members who are not admins get 403."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.views.workspaces import workspace_view
from servers import self_hosted
from servers.forms import ConnectServerForm
from servers.models import Server, get_server


@workspace_view(min_role=Role.ADMIN)
def connect(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The "Connect a server" form: the row is created and its check queued; the server's page
    then shows the configuration to paste and the check's outcome."""
    workspace = membership.workspace
    form = ConnectServerForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            server = self_hosted.connect_server(
                request.user,
                workspace,
                data["name"],
                data["endpoint"],
                secret=data["secret"] or None,
                request=request,
            )
        except ValidationError as error:
            for field, errors in error.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            if server.private_key:
                messages.success(
                    request,
                    f"{server.name} added. Paste the configuration below into the server,"
                    " restart it, then check the connection.",
                )
            else:
                messages.success(request, f"{server.name} added: checking the connection now.")
            return redirect("servers:detail", slug=workspace.slug, server_id=server.id)
    return render(
        request,
        "servers/self_hosted_connect.html",
        {"membership": membership, "workspace": workspace, "form": form},
        status=400 if form.errors else 200,
    )


def _server(request: HttpRequest, membership: Membership, server_id: str) -> Server:
    return get_server(request.user, membership.workspace.slug, server_id)


def _back(server: Server) -> HttpResponse:
    return redirect("servers:detail", slug=server.workspace.slug, server_id=server.id)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def check(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    server = _server(request, membership, server_id)
    try:
        queued = self_hosted.request_check(request.user, server, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        server.refresh_from_db(fields=["status"])
        if queued:
            messages.info(request, "Checking the connection.")
        elif server.status == Server.Status.PROVISIONING:
            messages.info(request, "A check is running already: its outcome appears here.")
        else:
            messages.info(request, "The server is connected: the console checks it every minute.")
    return _back(server)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def rotation_start(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    server = _server(request, membership, server_id)
    try:
        self_hosted.start_rotation(request.user, server, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.info(
            request,
            "New key pair generated. Paste the configuration with both keys into the server,"
            " restart it, then confirm. The current key signs until then.",
        )
    return _back(server)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def rotation_confirm(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    server = _server(request, membership, server_id)
    try:
        self_hosted.confirm_rotation(request.user, server, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.success(
            request,
            "The server accepts the new key: the console signs with it now. You can remove the"
            " old key from the server's configuration.",
        )
    return _back(server)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def rotation_cancel(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    server = _server(request, membership, server_id)
    try:
        self_hosted.cancel_rotation(request.user, server, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.info(request, "Key rotation cancelled: the current key goes on signing.")
    return _back(server)
