"""Workspaces, members, invitations and the audit trail."""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import audit, services
from accounts.context_processors import CURRENT_WORKSPACE
from accounts.forms import (
    InviteForm,
    RenameWorkspaceForm,
    RoleForm,
    WorkspaceForm,
)
from accounts.models import (
    Membership,
    Role,
    get_membership,
)
from accounts.verification import EmailNotVerified

WorkspaceView = Callable[..., HttpResponse]


def workspace_view(min_role: Role | None = None) -> Callable[[WorkspaceView], WorkspaceView]:
    """Resolve `<slug>` through the caller's memberships (404 for strangers) and check a role."""

    def decorator(view: WorkspaceView) -> WorkspaceView:
        @wraps(view)
        @login_required
        def wrapper(request: HttpRequest, slug: str, *args: object, **kwargs: object):
            membership = get_membership(request.user, slug)
            if min_role is not None and not membership.has_role(min_role):
                raise PermissionDenied(f"This page is for workspace {min_role.label.lower()}s.")
            request.workspace_slug = slug
            request.session[CURRENT_WORKSPACE] = slug
            return view(request, membership, *args, **kwargs)

        return wrapper

    return decorator


@login_required
def workspaces(request: HttpRequest) -> HttpResponse:
    memberships = (
        Membership.objects.filter(user=request.user)
        .select_related("workspace")
        .order_by("-workspace__is_personal", "workspace__name")
    )
    return render(request, "workspaces/list.html", {"memberships": memberships})


@login_required
def workspace_create(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.create_workspace(
                user=request.user,
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"] or services.suggest_slug(form.cleaned_data["name"]),
                request=request,
            )
        except services.WorkspaceError as error:
            form.add_error("slug", str(error))
        else:
            messages.success(request, f"Workspace “{workspace.name}” created.")
            return redirect("accounts:workspace", slug=workspace.slug)
    return render(request, "workspaces/create.html", {"form": form})


@workspace_view()
def workspace_members(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    form = InviteForm(request.POST or None)
    sent = None
    status = 200
    if request.method == "POST":
        if not membership.has_role(Role.ADMIN):
            raise PermissionDenied("Only owners and admins can invite people.")
        status = 400
        if form.is_valid():
            try:
                sent = services.invite(
                    membership,
                    email=form.cleaned_data["email"],
                    role=Role(form.cleaned_data["role"]),
                    replace=form.cleaned_data["replace"],
                    request=request,
                )
            except services.InvitationPending as pending:
                # Ask, showing the role it has now; sending again confirms the replacement.
                form = InviteForm(
                    initial={"email": pending.pending.email, "role": pending.pending.role,
                             "replace": True}
                )  # fmt: skip
                messages.warning(request, str(pending))
                status = 409
            except services.WorkspaceError as error:
                form.add_error("email", str(error))
            else:
                # The link is rendered into this answer only, never stored (not even in a
                # message cookie): a redirect would have to carry it somewhere.
                form = InviteForm()
                status = 200
    members = workspace.memberships.select_related("user").order_by("created_at")
    context = {
        "membership": membership,
        "workspace": workspace,
        "members": members,
        "invitations": workspace.invitations.pending().select_related("invited_by"),
        "form": form,
        "sent": sent,
        "sent_link": services.invitation_link(sent.token, request) if sent else "",
        "roles": Role.choices,
        "can_manage": membership.has_role(Role.ADMIN),
        "is_owner": membership.has_role(Role.OWNER),
    }
    return render(request, "workspaces/members.html", context, status=status)


def _run(request: HttpRequest, action: Callable[[], object], success: str) -> bool:
    """Run a workspace action; a refused rule becomes an error message, never a 500."""
    try:
        action()
    except services.WorkspaceError as error:
        messages.error(request, str(error))
        return False
    messages.success(request, success)
    return True


def _member_id(request: HttpRequest) -> int:
    try:
        return int(request.POST.get("member", ""))
    except ValueError:
        return -1


@workspace_view()
@require_POST
def member_role(request: HttpRequest, membership: Membership) -> HttpResponse:
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
    else:
        _run(
            request,
            lambda: services.change_role(
                membership, _member_id(request), Role(form.cleaned_data["role"]), request=request
            ),
            "Role changed.",
        )
    return redirect("accounts:members", slug=membership.workspace.slug)


@workspace_view()
@require_POST
def member_remove(request: HttpRequest, membership: Membership) -> HttpResponse:
    target = _member_id(request)
    leaving = target == membership.pk
    done = _run(
        request,
        lambda: services.remove_member(membership, target, request=request),
        f"You left {membership.workspace.name}." if leaving else "Member removed.",
    )
    if done and leaving:
        request.session.pop(CURRENT_WORKSPACE, None)
        return redirect("accounts:workspaces")
    return redirect("accounts:members", slug=membership.workspace.slug)


@workspace_view()
@require_POST
def invitation_revoke(request: HttpRequest, membership: Membership) -> HttpResponse:
    _run(
        request,
        lambda: services.revoke_invitation(
            membership, request.POST.get("invitation", ""), request=request
        ),
        "Invitation revoked.",
    )
    return redirect("accounts:members", slug=membership.workspace.slug)


@workspace_view(min_role=Role.OWNER)
def workspace_audit(request: HttpRequest, membership: Membership) -> HttpResponse:
    page = Paginator(audit.workspace_trail(membership.workspace), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "workspaces/audit.html",
        {"membership": membership, "workspace": membership.workspace, "page": page},
    )


@workspace_view()
def workspace_settings(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    form = RenameWorkspaceForm(request.POST or None, initial={"name": workspace.name})
    renamed = (
        request.method == "POST"
        and form.is_valid()
        and _run(
            request,
            lambda: services.rename_workspace(
                membership, name=form.cleaned_data["name"], request=request
            ),
            "Workspace renamed.",
        )
    )
    if renamed:
        return redirect("accounts:workspace-settings", slug=workspace.slug)
    return render(
        request,
        "workspaces/settings.html",
        {
            "membership": membership,
            "workspace": workspace,
            "form": form,
            "can_manage": membership.has_role(Role.ADMIN),
            "is_owner": membership.has_role(Role.OWNER),
        },
    )


@workspace_view()
@require_POST
def workspace_delete(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    if request.POST.get("confirm", "").strip() != workspace.slug:
        messages.error(request, f"Type the workspace's slug, “{workspace.slug}”, to delete it.")
        return redirect("accounts:workspace-settings", slug=workspace.slug)
    if _run(
        request,
        lambda: services.delete_workspace(membership, request=request),
        f"Workspace “{workspace.name}” deleted.",
    ):
        request.session.pop(CURRENT_WORKSPACE, None)
        return redirect("accounts:workspaces")
    return redirect("accounts:workspace-settings", slug=workspace.slug)


def invitation(request: HttpRequest, token: str) -> HttpResponse:
    found = services.find_invitation(token)
    if not request.user.is_authenticated:
        return render(
            request,
            "accounts/invitation.html",
            {"invitation": found, "next": request.path},
            status=200 if found else 404,
        )
    if request.method == "POST":
        accept = request.POST.get("action") == "accept"
        try:
            if accept:
                membership = services.accept_invitation(token, request.user, request=request)
            else:
                services.decline_invitation(token, request.user, request=request)
        except (services.WorkspaceError, EmailNotVerified) as error:
            messages.error(request, str(error))
            return redirect("accounts:invitation", token=token)
        if accept:
            messages.success(request, f"You joined {membership.workspace.name}.")
            return redirect("accounts:workspace", slug=membership.workspace.slug)
        messages.info(request, "Invitation declined.")
        return redirect("accounts:home")
    return render(
        request,
        "accounts/invitation.html",
        {"invitation": found, "next": request.path},
        status=200 if found else 404,
    )
