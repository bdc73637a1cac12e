"""The console's private-server pages, and deleting any server: thin, every write through
`servers.private` and `servers.services`. Admins and owners only; strangers get 404."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.views.workspaces import workspace_view
from servers import private, services
from servers.forms import PrivateServerForm
from servers.models import Server, get_server

DATABASE_FIELDS = {"host", "port", "database", "user", "password", "sslmode"}


def _add_errors(form: PrivateServerForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        # A URL's parts are judged as parts: their errors belong to the URL field then.
        if form.cleaned_data.get("url") and field in DATABASE_FIELDS:
            field = "url"
        form.add_error(field if field in form.fields else None, errors)


def _render_new(
    request: HttpRequest,
    membership: Membership,
    form: PrivateServerForm,
    *,
    check: private.ConnectionCheck | None = None,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        "servers/private_new.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "form": form,
            "check": check,
            "offered": private.offered(),
            "endpoint_example": private.endpoint_for("<name>", membership.workspace),
        },
        status=status,
    )


@workspace_view(min_role=Role.ADMIN)
def private_new(request: HttpRequest, membership: Membership) -> HttpResponse:
    """New private server: the database is checked before anything is stored."""
    workspace = membership.workspace
    form = PrivateServerForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            server = private.create_private_server(
                request.user,
                workspace,
                form.cleaned_data["name"],
                form.params(),
                request=request,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Connected to the database: provisioning {server.name}.")
            return redirect("servers:detail", slug=workspace.slug, server_id=server.id)
    return _render_new(request, membership, form, status=400 if form.errors else 200)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def private_test(request: HttpRequest, membership: Membership) -> HttpResponse:
    """ "Test connection": connects to the database the form describes and says what it found.
    The page's script asks for the fragment alone; without script the whole page comes back."""
    form = PrivateServerForm(request.POST)
    check: private.ConnectionCheck | None = None
    if form.is_valid():
        try:
            check = private.test_connection(form.params())
        except ValidationError as error:
            field, errors = next(iter(error.message_dict.items()))
            check = private.ConnectionCheck(False, errors[0], field=field)
    else:
        field, errors = next(iter(form.errors.items()))
        check = private.ConnectionCheck(False, f"{field}: {errors[0]}", field=field)
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "servers/_connection_result.html", {"check": check})
    return _render_new(request, membership, form, check=check)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def private_retry(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    """Provision a failed private server again (after the user fixed the database)."""
    server = get_server(request.user, membership.workspace.slug, server_id)
    try:
        private.provision_again(request.user, server)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.info(request, f"Provisioning {server.name} again.")
    return redirect("servers:detail", slug=membership.workspace.slug, server_id=server.id)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def server_delete(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    """Delete a private or self-hosted server once the user typed its name; a private server's
    schemas are dropped only when the box is ticked."""
    server = get_server(request.user, membership.workspace.slug, server_id)
    here = redirect("servers:detail", slug=membership.workspace.slug, server_id=server.id)
    if request.POST.get("confirm", "").strip() != server.name:
        messages.error(request, f"Type the server's name, {server.name}, to delete it.")
        return here
    drop = request.POST.get("drop_schemas") == "1"
    try:
        services.delete_server(request.user, server, drop_schemas=drop, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return here
    if server.kind == Server.Kind.SELF_HOSTED:
        kept = "the server itself keeps running, untouched"
    elif drop:
        kept = "its services' schemas are being dropped from your database"
    else:
        kept = "the services' schemas and data stay in your database"
    messages.info(request, f"Deleting {server.name}: {kept}.")
    return redirect("accounts:servers", slug=membership.workspace.slug)
