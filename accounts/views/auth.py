"""Sign-up, sign-in, sign-out, passwords and account settings."""

import time

from django.contrib import messages
from django.contrib.auth import authenticate, login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import audit, services, session_keys, throttle
from accounts.context_processors import CURRENT_WORKSPACE
from accounts.forms import (
    GENERIC_SIGN_IN_ERROR,
    PasswordChangeForm,
    ProfileForm,
    SignInForm,
    SignUpForm,
)
from accounts.middleware import LAST_SEEN, SIGNED_IN_AT
from accounts.models import (
    AuditAction,
    Membership,
    User,
)


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
