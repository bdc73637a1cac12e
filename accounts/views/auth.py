"""Sign-up, sign-in, sign-out, passwords and account settings."""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import reverse, reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts import audit, services, session_keys, verification
from accounts.context_processors import CURRENT_WORKSPACE
from accounts.forms import (
    PasswordChangeForm,
    ProfileForm,
    SignInForm,
    SignUpForm,
    VerifySignInForm,
)
from accounts.middleware import LAST_SEEN, SIGNED_IN_AT
from accounts.models import (
    AuditAction,
    Membership,
    User,
)


def safe_next_path(target: str) -> bool:
    """Only our own paths: `next=` never sends a user to another site."""
    return (
        target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and url_has_allowed_host_and_scheme(target, allowed_hosts=None)
    )


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    return target if safe_next_path(target) else default


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says; send them to the static one."""
    return redirect(static("favicon.ico"))


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


SIGN_UP_EMAIL = "sign_up_email"


def sign_up(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(safe_next(request, reverse("accounts:home")))
    # An invitation's "Create an account" link names the invited address.
    initial = {"email": request.GET.get("email", "")[:254]}
    form = SignUpForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.sign_up(
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password"],
            request=request,
            next_path=safe_next(request, ""),
        )
        # The same answer whether or not the address had an account: its owner gets a mail.
        request.session[SIGN_UP_EMAIL] = form.cleaned_data["email"]
        return redirect("accounts:sign-up-done")
    return render(request, "accounts/sign_up.html", {"form": form, "next": safe_next(request, "")})


def sign_up_done(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/sign_up_done.html",
        {
            "email": request.session.get(SIGN_UP_EMAIL, ""),
            "ttl_days": settings.EMAIL_VERIFICATION_TTL.days or 1,
        },
    )


def _after_verification(request: HttpRequest, next_path: str) -> HttpResponse:
    if next_path:
        messages.success(request, "Your email address is verified.")
        return redirect(next_path)
    messages.success(
        request,
        "Your email address is verified. Welcome to Refract: this is your personal workspace.",
    )
    return redirect("accounts:home")


def verify_email(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link. Verifying takes a POST from the account's owner: signed in as it, or
    with its password, so neither a squatter (no mailbox) nor the address's owner clicking a
    link they did not ask for (no password) can verify an account someone else created."""
    claim = verification.read_token(token)
    if claim is None:
        return render(request, "accounts/verify_email.html", {"invalid": True}, status=404)
    account = claim.user
    next_path = claim.next_path if safe_next_path(claim.next_path) else ""
    signed_in = request.user.is_authenticated
    if signed_in and request.user.pk != account.pk:
        return render(
            request, "accounts/verify_email.html", {"account": account, "other": True}, status=403
        )
    if account.is_verified and (signed_in or request.method != "POST"):
        if signed_in:
            return redirect(next_path or reverse("accounts:home"))
        messages.info(request, "Your email address is already verified. Sign in.")
        return redirect(f"{reverse('accounts:sign-in')}?{urlencode({'next': next_path})}")
    form = VerifySignInForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if signed_in:
            services.verify_email(account, request=request)
            return _after_verification(request, next_path)
        if form.is_valid():
            result = services.sign_in(
                email=account.email, password=form.cleaned_data["password"], request=request
            )
            if result.user is not None:
                _start_session(request, result.user)
                services.verify_email(result.user, request=request)
                return _after_verification(request, next_path)
            form.add_error(None, result.error)
            status = 429 if result.retry_after else 400
    response = render(
        request,
        "accounts/verify_email.html",
        {"account": account, "form": form, "signed_in": signed_in},
        status=status,
    )
    if status == 429:
        response["Retry-After"] = str(result.retry_after)
    return response


@login_required
@require_POST
def resend_verification(request: HttpRequest) -> HttpResponse:
    next_path = safe_next(request, "")
    verdict = services.resend_verification(request.user, request=request, next_path=next_path)
    if request.user.is_verified:
        messages.info(request, "Your email address is already verified.")
    elif verdict.allowed:
        messages.success(request, f"We sent a new link to {request.user.email}. Check your inbox.")
    else:
        messages.error(
            request,
            "A link was sent a moment ago. Check your inbox (and spam folder), or wait"
            f" {services.seconds_phrase(verdict.retry_after)} and try again.",
        )
    return redirect(next_path or reverse("accounts:home"))


def sign_in(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(safe_next(request, reverse("accounts:home")))
    form = SignInForm(request.POST or None)
    result = None
    if request.method == "POST" and form.is_valid():
        result = services.sign_in(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password"],
            request=request,
        )
        if result.user is not None:
            _start_session(request, result.user)
            return redirect(safe_next(request, reverse("accounts:home")))
        form.add_error(None, result.error)
    response = render(
        request, "accounts/sign_in.html", {"form": form, "next": safe_next(request, "")}
    )
    if result is not None and result.retry_after:
        response.status_code = 429
        response["Retry-After"] = str(result.retry_after)
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
        count = services.complete_password_reset(form.user, request=self.request)
        keys = f"{count} CLI session key{'s were' if count != 1 else ' was'} revoked"
        messages.success(
            self.request,
            f"Your password was reset: every session was signed out and {keys}."
            " Sign in with the new password.",
        )
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
