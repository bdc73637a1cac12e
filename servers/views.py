"""The console's servers, services and deploys pages: thin, every write through
`servers.services` (servers) and `servers.deploys` (services and deploys)."""

from __future__ import annotations

import json
import shlex

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role
from accounts.views.workspaces import workspace_view
from servers import deploys, services
from servers.forms import NewServiceForm
from servers.history import datamodel_diff, describe_step, previous_success
from servers.limits import SandboxLimits, sandbox_limits
from servers.models import Deploy, Server, Service, get_server, get_service
from servers.starters import STARTERS, UnknownStarter, get_starter


def _regions_free(membership: Membership) -> list[str]:
    taken = set(
        membership.workspace.servers.filter(kind=Server.Kind.SANDBOX)
        .exclude(status=Server.Status.FAILED)
        .values_list("region", flat=True)
    )
    return [name for name in settings.SANDBOX_REGIONS if name not in taken]


@workspace_view()
def workspace_overview(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The workspace at a glance: its servers with their status, and its services with their
    requests over 24 h and storage (filled in by the same usage call as the Services tab, which
    also warns of a sandbox service near its cap or throttled)."""
    workspace = membership.workspace
    servers = list(
        Server.objects.for_user(request.user)
        .filter(workspace=workspace)
        .select_related("workspace")
        .order_by("name")
    )
    services_ = list(
        Service.objects.for_user(request.user)
        .filter(server__workspace=workspace)
        .exclude(status=Service.Status.DELETING)
        .select_related("server__workspace")
        .order_by("name", "stage", "server__name")
    )
    return render(
        request,
        "workspaces/overview.html",
        {
            "membership": membership,
            "workspace": workspace,
            "servers": servers,
            "services": services_,
            "member_count": workspace.memberships.count(),
        },
    )


@workspace_view()
def server_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    servers = (
        Server.objects.for_user(request.user)
        .filter(workspace=workspace)
        .select_related("workspace")
        .annotate(
            service_count=Count("services", filter=~Q(services__status=Service.Status.DELETING))
        )
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
    limits = sandbox_limits()
    return render(
        request,
        "servers/detail.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "server": server,
            "limits": limits,
            "services": [
                (service, _storage_share(service, limits))
                for service in server.services.exclude(status=Service.Status.DELETING)
            ],
        },
    )


def _storage_share(service: Service, limits: SandboxLimits) -> int | None:
    """Percent of the sandbox's storage cap the service used at the last measure."""
    if service.storage_bytes is None:
        return None
    return min(100, round(100 * service.storage_bytes / (limits.storage_mb * 1024 * 1024)))


@workspace_view()
def server_status(request: HttpRequest, membership: Membership, server_id: str) -> HttpResponse:
    """The status fragment the detail page polls while the server is provisioning."""
    server = get_server(request.user, membership.workspace.slug, server_id)
    return render(request, "servers/_status.html", {"server": server})


# --- services and deploys -----------------------------------------------------------------------
# Every write goes through `servers.deploys`; a service is reached only through `get_service`
# and a deploy only through its service, so another workspace's ids are 404 everywhere.

# The service token of a new service, carried once from the create view to the first page that
# shows it (DESIGN invariant 4: a secret is shown once); popped when shown.
NEW_SERVICE_FLASH = "servers.new_service"
HISTORY_LENGTH = 50
# For services the console did not create (Prisma CLI, found on the server): any schema has it.
FALLBACK_QUERY = "{ __schema { queryType { name } } }"


def _flash_token(request: HttpRequest, service: Service, token: str) -> None:
    if token:
        request.session[NEW_SERVICE_FLASH] = {"service": str(service.id), "token": token}


def _pop_token(request: HttpRequest, service: Service) -> str:
    flash = request.session.get(NEW_SERVICE_FLASH)
    if isinstance(flash, dict) and flash.get("service") == str(service.id):
        del request.session[NEW_SERVICE_FLASH]
        return str(flash.get("token", ""))
    return ""


def _example_query(service: Service) -> str:
    try:
        return get_starter(service.starter).example_query
    except UnknownStarter:
        return FALLBACK_QUERY


def example_curl(service: Service, token: str = "") -> str:
    """A request anyone can paste into a shell: the endpoint, the starter's example query and,
    for a protected service, the token (or a placeholder once it was shown)."""
    lines = [f"curl {shlex.quote(service.endpoint)}", "  -H 'Content-Type: application/json'"]
    if service.secret:
        lines.append(f"  -H {shlex.quote('Authorization: Bearer ' + (token or '<token>'))}")
    lines.append(f"  --data {shlex.quote(json.dumps({'query': _example_query(service)}))}")
    return " \\\n".join(lines)


def _add_errors(form: NewServiceForm, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, errors in error.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)


@workspace_view()
def service_list(request: HttpRequest, membership: Membership) -> HttpResponse:
    """The workspace's Services tab: every service on every server, with its last deploy."""
    workspace = membership.workspace
    latest = Deploy.objects.filter(service=OuterRef("pk")).order_by("-created_at")
    services_ = (
        Service.objects.for_user(request.user)
        .filter(server__workspace=workspace)
        .select_related("server__workspace")
        .annotate(
            last_deploy_id=Subquery(latest.values("id")[:1]),
            last_deploy_status=Subquery(latest.values("status")[:1]),
        )
        .order_by("name", "stage", "server__name")
    )
    listed = list(services_)
    for service in listed:
        if service.last_deploy_status:
            service.last_deploy_label = Deploy.Status(service.last_deploy_status).label
    return render(
        request,
        "workspaces/services.html",
        {
            "membership": membership,
            "workspace": workspace,
            "services": listed,
        },
    )


@workspace_view()
def service_create(request: HttpRequest, membership: Membership) -> HttpResponse:
    """One click from nothing to a working endpoint: the service is created with its starter's
    datamodel and its first deploy queued; the user lands on that deploy."""
    workspace = membership.workspace
    form = NewServiceForm(
        request.user, workspace, request.POST if request.method == "POST" else None
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        starter = get_starter(data["starter"])
        try:
            created = deploys.create_service(
                request.user,
                data["server"],
                data["name"],
                data["stage"],
                starter.datamodel,
                starter=starter.key,
                protect=data["protect"],
                request=request,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            service = created.service
            _flash_token(request, created.service, created.token)
            messages.success(
                request, f"Service {service.name}/{service.stage} created: deploying it now."
            )
            return redirect(
                "servers:deploy",
                slug=workspace.slug,
                service_id=service.id,
                deploy_id=created.deploy.id,
            )
    servers = list(form.fields["server"].queryset)  # type: ignore[attr-defined]
    for server in servers:
        server.name_budget = deploys.name_budget(server)
    chosen_id = str(form["server"].value() or "")
    return render(
        request,
        "servers/service_new.html",
        {
            "membership": membership,
            "workspace": workspace,
            "form": form,
            "servers": servers,
            "chosen": next(
                (s for s in servers if str(s.id) == chosen_id), servers[0] if servers else None
            ),
            "starters": STARTERS,
        },
        status=400 if form.errors else 200,
    )


def _render_service(
    request: HttpRequest,
    membership: Membership,
    service: Service,
    *,
    datamodel: str | None = None,
    deploy_errors: list[str] | None = None,
    delete_error: str = "",
    status: int = 200,
) -> HttpResponse:
    history = list(service.deploys.select_related("requested_by")[:HISTORY_LENGTH])
    if datamodel is None:  # what to edit: what is live, else what was last tried
        datamodel = service.datamodel or next((d.datamodel for d in history if d.datamodel), "")
    token = _pop_token(request, service)
    return render(
        request,
        "servers/service_detail.html",
        {
            "membership": membership,
            "workspace": membership.workspace,
            "service": service,
            "history": history,
            "in_flight": any(not d.is_final for d in history),
            "token": token,
            "curl": example_curl(service, token),
            "datamodel": datamodel,
            "deploy_errors": deploy_errors or [],
            "delete_error": delete_error,
            "max_datamodel_kb": deploys.MAX_DATAMODEL_BYTES // 1024,
        },
        status=status,
    )


@workspace_view()
def service_detail(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    service = get_service(request.user, membership.workspace.slug, service_id)
    return _render_service(request, membership, service)


@workspace_view()
def service_live(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    """The status and history fragment the service page polls while a deploy is in flight or
    the service is being deleted (a 404 then tells the page it is gone)."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    history = list(service.deploys.select_related("requested_by")[:HISTORY_LENGTH])
    return render(
        request,
        "servers/_service_live.html",
        {
            "workspace": membership.workspace,
            "service": service,
            "history": history,
            "in_flight": any(not d.is_final for d in history),
        },
    )


@workspace_view()
@require_POST
def service_deploy(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    """The edited datamodel, deployed or dry-run; on an error the page keeps what was typed."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    datamodel = request.POST.get("datamodel", "")
    dry_run = request.POST.get("action") == "dry_run"
    try:
        deploy = deploys.request_deploy(
            request.user, service, datamodel, dry_run=dry_run, request=request
        )
    except ValidationError as error:
        return _render_service(
            request,
            membership,
            service,
            datamodel=datamodel,
            deploy_errors=error.messages,
            status=400,
        )
    return redirect(
        "servers:deploy", slug=membership.workspace.slug, service_id=service.id, deploy_id=deploy.id
    )


@workspace_view()
@require_POST
def service_token(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    """A new service token for a protected service, shown once like the first (a lost token
    is replaced, not recovered: the secret itself is never shown)."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    try:
        token = deploys.issue_service_token(request.user, service, request=request)
    except ValueError as error:
        messages.error(request, str(error))
    else:
        _flash_token(request, service, token)
    return redirect("servers:service", slug=membership.workspace.slug, service_id=service.id)


@workspace_view()
@require_POST
def service_delete(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    """Delete after the user typed the service's name (a gear-menu click deleted services in
    Prisma Cloud; here a slip cannot)."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    if request.POST.get("confirm", "").strip() != service.name:
        return _render_service(
            request,
            membership,
            service,
            delete_error=f"Type the service's name, {service.name}, to delete it.",
            status=400,
        )
    deploys.delete_service(request.user, service, request=request)
    messages.info(request, f"Deleting {service.name}/{service.stage} from {service.server.name}.")
    return redirect("servers:service", slug=membership.workspace.slug, service_id=service.id)


def _get_deploy(
    request: HttpRequest, membership: Membership, service_id: str, deploy_id: str
) -> Deploy:
    """A deploy of a service the user can reach (through `get_service`), or 404."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    try:
        deploy = service.deploys.select_related("requested_by").get(id=deploy_id)
    except Deploy.DoesNotExist:
        raise Http404("No such deploy") from None
    deploy.service = service
    return deploy


def _live_context(deploy: Deploy) -> dict[str, object]:
    return {
        "workspace": deploy.service.server.workspace,
        "service": deploy.service,
        "deploy": deploy,
        "steps": [describe_step(step) for step in deploy.steps if isinstance(step, dict)],
        "stuck": deploys.is_stuck(deploy),
    }


@workspace_view()
def deploy_detail(
    request: HttpRequest, membership: Membership, service_id: str, deploy_id: str
) -> HttpResponse:
    deploy = _get_deploy(request, membership, service_id, deploy_id)
    service = deploy.service
    previous = previous_success(deploy)
    diff = []
    if deploy.datamodel and (previous is None or previous.datamodel):
        diff = datamodel_diff(
            previous.datamodel if previous else "",
            deploy.datamodel,
            f"revision {previous.revision}" if previous else "nothing deployed",
            "this deploy",
        )
    token = _pop_token(request, service)
    return render(
        request,
        "servers/deploy_detail.html",
        {
            **_live_context(deploy),
            "membership": membership,
            "previous": previous,
            "diff": diff,
            "added": sum(line.kind == "add" for line in diff),
            "removed": sum(line.kind == "del" for line in diff),
            "first": not service.deploys.filter(created_at__lt=deploy.created_at).exists(),
            "token": token,
            "curl": example_curl(service, token),
        },
    )


@workspace_view()
def deploy_live(
    request: HttpRequest, membership: Membership, service_id: str, deploy_id: str
) -> HttpResponse:
    """The fragment the deploy page polls while the deploy is queued or running."""
    deploy = _get_deploy(request, membership, service_id, deploy_id)
    return render(request, "servers/_deploy_live.html", _live_context(deploy))


@workspace_view()
@require_POST
def deploy_cancel(
    request: HttpRequest, membership: Membership, service_id: str, deploy_id: str
) -> HttpResponse:
    deploy = _get_deploy(request, membership, service_id, deploy_id)
    try:
        deploys.cancel_deploy(request.user, deploy, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    else:
        messages.info(request, "Deploy cancelled.")
    return redirect(
        "servers:deploy", slug=membership.workspace.slug, service_id=service_id, deploy_id=deploy_id
    )


@workspace_view()
@require_POST
def deploy_redeploy(
    request: HttpRequest, membership: Membership, service_id: str, deploy_id: str
) -> HttpResponse:
    """Redeploy this revision (a rollback, or a dry run's datamodel for real), and "Deploy
    anyway" with `force` once the user ticked that the listed data loss is intended."""
    deploy = _get_deploy(request, membership, service_id, deploy_id)
    force = request.POST.get("force") == "1"
    here = redirect(
        "servers:deploy", slug=membership.workspace.slug, service_id=service_id, deploy_id=deploy_id
    )
    if force and request.POST.get("confirm_data_loss") != "1":
        messages.error(request, "Tick the box to confirm the data loss the warnings describe.")
        return here
    try:
        again = deploys.redeploy(request.user, deploy, force=force, request=request)
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return here
    return redirect(
        "servers:deploy", slug=membership.workspace.slug, service_id=service_id, deploy_id=again.id
    )
