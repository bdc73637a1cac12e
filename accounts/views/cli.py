"""CLI login approval (`/cli-auth`, `/device`) and the session keys page."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import cli_login, session_keys
from accounts.forms import SessionKeyForm
from accounts.models import CliLoginRequest, SessionKey


def _login_context(login: CliLoginRequest | None) -> dict:
    return {
        "login": login,
        "user_code": cli_login.format_user_code(login.user_code) if login else "",
        "client_shows_code": bool(login) and login.client_name != cli_login.PRISMA_CLI_NAME,
        "client_waiting": bool(login) and cli_login.client_is_waiting(login),
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
        login = cli_login.find_by_user_code(request.user, code)
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
            {**_login_context(None), "error": str(error), "error_code": error.code},
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
