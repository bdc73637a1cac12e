import time
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import audit, cli_login, services, session_keys, throttle
from accounts.context_processors import CURRENT_WORKSPACE
from accounts.forms import (
    GENERIC_SIGN_IN_ERROR,
    InviteForm,
    PasswordChangeForm,
    ProfileForm,
    RenameWorkspaceForm,
    RoleForm,
    SessionKeyForm,
    SignInForm,
    SignUpForm,
    WorkspaceForm,
)
from accounts.middleware import LAST_SEEN, SIGNED_IN_AT
from accounts.models import (
    AuditAction,
    CliLoginRequest,
    Membership,
    Role,
    SessionKey,
    User,
    get_membership,
)

WorkspaceView = Callable[..., HttpResponse]


def safe_next(request: HttpRequest, default: str) -> str:
    """Only our own paths: `next=` never sends a user to another site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and url_has_allowed_host_and_scheme(target, allowed_hosts=None)
    ):
        return target
    return default


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("accounts:sign-in")
    slug = request.session.get(CURRENT_WORKSPACE)
    membership = Membership.objects.filter(user=request.user, workspace__slug=slug).first() or (
        Membership.objects.filter(user=request.user).order_by("-workspace__is_personal").first()
    )
    if membership is None:
        return redirect("accounts:workspaces")
    return redirect("accounts:workspace", slug=membership.workspace.slug)


def _start_session(request: HttpRequest, user: User) -> None:
    login(request, user, backend="accounts.backends.EmailBackend")
    now = int(time.time())
    request.session[SIGNED_IN_AT] = now
    request.session[LAST_SEEN] = now


def sign_up(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(safe_next(request, reverse("accounts:home")))
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.sign_up(
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password"],
            request=request,
        )
        _start_session(request, user)
        messages.success(request, "Welcome to Refract. This is your personal workspace.")
        return redirect(safe_next(request, reverse("accounts:home")))
    return render(request, "accounts/sign_up.html", {"form": form, "next": safe_next(request, "")})


def sign_in(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(safe_next(request, reverse("accounts:home")))
    form = SignInForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"].strip().lower()
        address = audit.client_address(request)
        verdict = throttle.check(email, address)
        if not verdict.allowed:
            form.add_error(
                None,
                f"Too many failed attempts. Wait {verdict.retry_after} seconds and try again.",
            )
            status = 429
        else:
            user = authenticate(request, email=email, password=form.cleaned_data["password"])
            if user is None:
                throttle.record_failure(email, address)
                audit.record(
                    AuditAction.SIGN_IN_FAILED,
                    request=request,
                    user=User.objects.filter(email=email).first(),
                    email=email,
                )
                form.add_error(None, GENERIC_SIGN_IN_ERROR)
            else:
                throttle.record_success(email)
                _start_session(request, user)
                audit.record(AuditAction.SIGN_IN, request=request, user=user)
                return redirect(safe_next(request, reverse("accounts:home")))
    response = render(
        request, "accounts/sign_in.html", {"form": form, "next": safe_next(request, "")}
    )
    response.status_code = status
    if status == 429:
        response["Retry-After"] = str(verdict.retry_after)
    return response


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        audit.record(AuditAction.SIGN_OUT, request=request, user=request.user)
    logout(request)  # flushes the server-side session
    messages.info(request, "You are signed out.")
    return redirect("accounts:sign-in")


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:settings")
    form_class = PasswordChangeForm

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        response = super().form_valid(form)
        audit.record(AuditAction.PASSWORD_CHANGED, request=self.request, user=self.request.user)
        update_session_auth_hash(self.request, form.user)
        message = "Your password was changed."
        if form.cleaned_data.get("revoke_keys"):
            count = session_keys.revoke_all(form.user, request=self.request)
            message += f" {count} CLI session key{'s were' if count != 1 else ' was'} revoked."
        messages.success(self.request, message)
        return response


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-sent")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        email = form.cleaned_data["email"].strip().lower()
        audit.record(
            AuditAction.PASSWORD_RESET_REQUESTED,
            request=self.request,
            user=User.objects.filter(email=email).first(),
            email=email,
        )
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:sign-in")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        response = super().form_valid(form)
        audit.record(AuditAction.PASSWORD_RESET, request=self.request, user=form.user)
        messages.success(self.request, "Your password was reset. Sign in with the new one.")
        return response


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile was saved.")
        return redirect("accounts:settings")
    events = audit.account_trail(request.user)[:20]
    return render(request, "accounts/settings.html", {"form": form, "events": events})


# Workspaces ---------------------------------------------------------------------------------


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
                slug=form.cleaned_data["slug"],
                request=request,
            )
        except services.WorkspaceError as error:
            form.add_error("slug", str(error))
        else:
            messages.success(request, f"Workspace “{workspace.name}” created.")
            return redirect("accounts:workspace", slug=workspace.slug)
    return render(request, "workspaces/create.html", {"form": form})


@workspace_view()
def workspace_overview(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    return render(
        request,
        "workspaces/overview.html",
        {
            "membership": membership,
            "workspace": workspace,
            "member_count": workspace.memberships.count(),
        },
    )


@workspace_view()
def workspace_servers(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(
        request,
        "workspaces/servers.html",
        {"membership": membership, "workspace": membership.workspace},
    )


@workspace_view()
def workspace_services(request: HttpRequest, membership: Membership) -> HttpResponse:
    return render(
        request,
        "workspaces/services.html",
        {"membership": membership, "workspace": membership.workspace},
    )


@workspace_view()
def workspace_members(request: HttpRequest, membership: Membership) -> HttpResponse:
    workspace = membership.workspace
    form = InviteForm(request.POST or None)
    if request.method == "POST":
        if not membership.has_role(Role.ADMIN):
            raise PermissionDenied("Only owners and admins can invite people.")
        if form.is_valid():
            try:
                invitation, token = services.invite(
                    membership,
                    email=form.cleaned_data["email"],
                    role=Role(form.cleaned_data["role"]),
                    request=request,
                )
            except services.WorkspaceError as error:
                form.add_error("email", str(error))
            else:
                link = services.invitation_link(token, request)
                messages.success(
                    request,
                    f"Invitation sent to {invitation.email}. The link (shown only now): {link}",
                )
                return redirect("accounts:members", slug=workspace.slug)
        status = 400
    else:
        status = 200
    members = workspace.memberships.select_related("user").order_by("created_at")
    context = {
        "membership": membership,
        "workspace": workspace,
        "members": members,
        "invitations": workspace.invitations.pending().select_related("invited_by"),
        "form": form,
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
        except services.WorkspaceError as error:
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


# CLI login approval and session keys ------------------------------------------------------


def _login_context(login: CliLoginRequest | None) -> dict:
    return {
        "login": login,
        "user_code": cli_login.format_user_code(login.user_code) if login else "",
    }


@login_required
def cli_auth(request: HttpRequest) -> HttpResponse:
    """The page the Prisma CLI opens: `/cli-auth?secret=...`. Approves only on POST."""
    secret = request.POST.get("secret") or request.GET.get("secret", "")
    login = cli_login.find_by_secret(secret)
    if request.method == "POST" and login is not None:
        return _decide(request, login)
    return render(
        request,
        "accounts/cli_auth.html",
        {**_login_context(login), "secret": secret},
        status=200 if login else 404,
    )


@login_required
def device(request: HttpRequest) -> HttpResponse:
    """The device flow: type the code the CLI shows, then authorize or deny."""
    code = request.POST.get("code") or request.GET.get("code", "")
    if "secret=" in code:
        # A pasted Prisma CLI link: it names another console's host, so take only its secret.
        secret = code.split("secret=", 1)[1].split("&", 1)[0].strip()
        return redirect(f"{reverse('accounts:cli-auth')}?{urlencode({'secret': secret})}")
    if request.method != "POST" or not code:
        return render(request, "accounts/device.html", {"code": code})
    try:
        login = cli_login.find_by_user_code(request.user, code, audit.client_address(request))
    except cli_login.LoginRequestError as error:
        status = 429 if error.code == "too_many_attempts" else 400
        return render(
            request, "accounts/device.html", {"code": code, "error": str(error)}, status=status
        )
    if request.POST.get("action"):
        return _decide(request, login)
    return render(
        request, "accounts/cli_auth.html", {**_login_context(login), "device_code_entry": code}
    )


def _decide(request: HttpRequest, login: CliLoginRequest) -> HttpResponse:
    action = request.POST.get("action")
    try:
        if action == "authorize":
            cli_login.approve(login, request.user, request=request)
        elif action == "deny":
            cli_login.deny(login, request.user, request=request)
        else:
            raise cli_login.LoginRequestError("bad_action", "Choose Authorize or Deny.")
    except cli_login.LoginRequestError as error:
        return render(
            request,
            "accounts/cli_auth.html",
            {**_login_context(None), "error": str(error)},
            status=409,
        )
    return render(
        request,
        "accounts/cli_auth_done.html",
        {**_login_context(login), "approved": action == "authorize"},
    )


@login_required
def session_key_list(request: HttpRequest) -> HttpResponse:
    form = SessionKeyForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        key, token = session_keys.issue(
            request.user, name=form.cleaned_data["name"], origin=SessionKey.Origin.CONSOLE,
            request=request,
        )  # fmt: skip
        created = {"key": key, "token": token}
        form = SessionKeyForm()
    keys = SessionKey.objects.live().filter(user=request.user)
    return render(
        request,
        "accounts/session_keys.html",
        {"keys": keys, "form": form, "created": created},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def session_key_revoke(request: HttpRequest, key_id: str) -> HttpResponse:
    key = get_object_or_404(SessionKey, pk=key_id, user=request.user)
    if session_keys.revoke(key, request=request):
        messages.success(request, f"Revoked “{key.name}”. It stops working immediately.")
    return redirect("accounts:session-keys")


@login_required
@require_POST
def session_key_revoke_all(request: HttpRequest) -> HttpResponse:
    count = session_keys.revoke_all(request.user, request=request)
    messages.success(request, f"Revoked {count} key{'s' if count != 1 else ''}.")
    return redirect("accounts:session-keys")
