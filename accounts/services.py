"""Account and workspace workflows. Views and APIs call these; they hold the rules."""

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts import audit, session_keys, throttle, verification
from accounts.models import (
    AuditAction,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
    hash_token,
)

# Verification mails: at most one a minute and five an hour per account, so the resend button
# cannot be used to flood someone's mailbox. Sign-up attempts on an existing address mail its
# owner at most three times an hour.
VERIFICATION_MAIL_LIMITS = ((1, timedelta(minutes=1)), (5, timedelta(hours=1)))
EXISTING_ACCOUNT_MAIL_LIMIT = (3, timedelta(hours=1))

# Slugs become URL segments and sandbox endpoint segments (`/<workspace>/<service>/<stage>`).
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$")
RESERVED_SLUGS = {
    "admin", "api", "app", "cli-auth", "console", "device", "graphql", "invitations",
    "management", "new", "prisma", "settings", "static", "status", "system", "workspaces", "www",
}  # fmt: skip


class WorkspaceError(Exception):
    """A rule of workspaces refused the change; the message is shown to the user."""


def validate_slug(slug: str) -> None:
    if not SLUG_RE.match(slug) or "--" in slug:
        raise WorkspaceError(
            "Use 3 to 40 lower-case letters, digits and single hyphens, starting and ending"
            " with a letter or digit."
        )
    if slug in RESERVED_SLUGS:
        raise WorkspaceError(f"“{slug}” is reserved. Choose another slug.")


def suggest_slug(text: str) -> str:
    """A free slug derived from a name or email, with a random suffix if taken."""
    base = slugify(text.split("@")[0])[:30].strip("-") or "workspace"
    base = re.sub(r"-+", "-", base)
    if len(base) < 3:
        base = f"{base}-ws"
    candidate = base
    while candidate in RESERVED_SLUGS or Workspace.objects.filter(slug=candidate).exists():
        candidate = f"{base}-{secrets.token_hex(2)}"
    return candidate


def seconds_phrase(seconds: int) -> str:
    return f"{seconds} second{'' if seconds == 1 else 's'}"


def _absolute(path: str, request: HttpRequest | None) -> str:
    return request.build_absolute_uri(path) if request else f"{settings.SITE_URL}{path}"


def _mail_on_commit(*, to: str, subject: str, template: str, context: dict) -> None:
    """Mail once the transaction commits: a rolled-back workflow sends nothing."""
    transaction.on_commit(
        lambda: send_mail(
            subject=subject,
            message=render_to_string(template, context),
            from_email=None,
            recipient_list=[to],
        )
    )


@transaction.atomic
def sign_up(
    *,
    email: str,
    name: str,
    password: str,
    request: HttpRequest | None = None,
    next_path: str = "",
) -> User | None:
    """Create an unverified account and mail its verification link.

    For an address that already has an account nothing is created and its owner is mailed
    instead; the caller answers the same either way, so sign-up does not tell who has an
    account. Returns the new user, or None for an existing address.
    """
    email = User.objects.normalize_email(email).strip().lower()
    existing = User.objects.filter(email=email).first()
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=email, password=password, name=name)
        except IntegrityError:  # the same address signed up a moment ago
            existing = User.objects.get(email=email)
    if existing is not None:
        User().set_password(password)  # the same hashing work as a new account
        _existing_account_attempt(existing, request)
        return None
    workspace = Workspace.objects.create(
        name=f"{name or user.email}'s workspace"[:64],
        slug=suggest_slug(name if len(slugify(name)) >= 3 else user.email),
        is_personal=True,
        created_by=user,
    )
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    audit.record(AuditAction.SIGN_UP, request=request, actor=user, user=user)
    audit.record(
        AuditAction.WORKSPACE_CREATED, request=request, actor=user, workspace=workspace,
        slug=workspace.slug,
    )  # fmt: skip
    _mail_verification(user, request, next_path)
    return user


def _existing_account_attempt(user: User, request: HttpRequest | None) -> None:
    audit.record(AuditAction.SIGN_UP_EXISTING, request=request, user=user)
    limit, window = EXISTING_ACCOUNT_MAIL_LIMIT
    name = f"signup-existing:{user.pk}"
    if not throttle.check_counter(name, limit, window).allowed:
        return
    throttle.count(name, window)
    _mail_on_commit(
        to=user.email,
        subject="Someone tried to create a Refract account with your address",
        template="accounts/email/account_exists.txt",
        context={
            "user": user,
            "sign_in": _absolute(reverse("accounts:sign-in"), request),
            "reset": _absolute(reverse("accounts:password-reset"), request),
        },
    )


def verification_link(user: User, request: HttpRequest | None = None, next_path: str = "") -> str:
    token = verification.make_token(user, next_path)
    return _absolute(reverse("accounts:verify-email", args=[token]), request)


def _mail_verification(user: User, request: HttpRequest | None, next_path: str = "") -> None:
    for _limit, window in VERIFICATION_MAIL_LIMITS:
        throttle.count(f"verify-mail:{user.pk}:{window.total_seconds():.0f}", window)
    _mail_on_commit(
        to=user.email,
        subject="Verify your email address for Refract",
        template="accounts/email/verify_email.txt",
        context={
            "user": user,
            "link": verification_link(user, request, next_path),
            "ttl_days": settings.EMAIL_VERIFICATION_TTL.days or 1,
        },
    )


def resend_verification(
    user: User, *, request: HttpRequest | None = None, next_path: str = ""
) -> throttle.Verdict:
    """Mail a fresh link, unless one went out too recently (the verdict says how long to wait)."""
    if user.is_verified:
        return throttle.Verdict(True)
    for limit, window in VERIFICATION_MAIL_LIMITS:
        verdict = throttle.check_counter(
            f"verify-mail:{user.pk}:{window.total_seconds():.0f}", limit, window
        )
        if not verdict.allowed:
            return verdict
    with transaction.atomic():
        _mail_verification(user, request, next_path)
    return throttle.Verdict(True)


@transaction.atomic
def verify_email(user: User, *, request: HttpRequest | None = None) -> bool:
    """Mark the address as proven; False when it already was (the link may be followed twice)."""
    now = timezone.now()
    updated = User.objects.filter(pk=user.pk, email_verified_at__isnull=True).update(
        email_verified_at=now
    )
    if updated:
        user.email_verified_at = now
        audit.record(AuditAction.EMAIL_VERIFIED, request=request, user=user)
    return bool(updated)


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a user, or an error to show (with a wait if throttled)."""

    user: User | None
    error: str = ""
    retry_after: int = 0


GENERIC_SIGN_IN_ERROR = "That email and password do not match an account. Check both and try again."


def sign_in(*, email: str, password: str, request: HttpRequest | None) -> SignIn:
    """Throttle, authenticate and audit one attempt; the caller starts its own session."""
    email = email.strip().lower()
    address = audit.client_address(request)
    verdict = throttle.check(email, address)
    if not verdict.allowed:
        wait = seconds_phrase(verdict.retry_after)
        return SignIn(
            None, f"Too many failed attempts. Wait {wait} and try again.", verdict.retry_after
        )
    user = authenticate(request, email=email, password=password)
    if user is None:
        throttle.record_failure(email, address)
        audit.record(
            AuditAction.SIGN_IN_FAILED,
            request=request,
            user=User.objects.filter(email=email).first(),
            email=email,
        )
        return SignIn(None, GENERIC_SIGN_IN_ERROR)
    throttle.record_success(email)
    audit.record(AuditAction.SIGN_IN, request=request, user=user)
    return SignIn(user)


@transaction.atomic
def complete_password_reset(user: User, *, request: HttpRequest | None = None) -> int:
    """After a reset by emailed link: revoke every key and record it; returns the keys revoked.

    The new password already ends every browser session (Django checks a hash of the password
    on each request). The link proved the mailbox, so the address counts as verified: a real
    owner who resets takes the account back from whoever signed up with their address.
    """
    count = session_keys.revoke_all(user, request=request)
    audit.record(AuditAction.PASSWORD_RESET, request=request, user=user, keys_revoked=count)
    verify_email(user, request=request)
    return count


@transaction.atomic
def create_workspace(
    *, user: User, name: str, slug: str, request: HttpRequest | None = None
) -> Workspace:
    validate_slug(slug)
    if Workspace.objects.filter(slug=slug).exists():
        raise WorkspaceError("That slug is taken. Choose another.")
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(name=name, slug=slug, created_by=user)
    except IntegrityError:  # lost a race for the slug
        raise WorkspaceError("That slug is taken. Choose another.") from None
    Membership.objects.create(workspace=workspace, user=user, role=Role.OWNER)
    audit.record(
        AuditAction.WORKSPACE_CREATED, request=request, actor=user, workspace=workspace, slug=slug
    )
    return workspace


@transaction.atomic
def rename_workspace(
    membership: Membership, *, name: str, request: HttpRequest | None = None
) -> Workspace:
    if not membership.has_role(Role.ADMIN):
        raise WorkspaceError("Only owners and admins can rename the workspace.")
    workspace = membership.workspace
    old = workspace.name
    workspace.name = name
    workspace.save(update_fields=["name"])
    audit.record(
        AuditAction.WORKSPACE_RENAMED, request=request, workspace=workspace, old=old, new=name
    )
    return workspace


@transaction.atomic
def delete_workspace(membership: Membership, *, request: HttpRequest | None = None) -> None:
    if not membership.has_role(Role.OWNER):
        raise WorkspaceError("Only owners can delete the workspace.")
    workspace = membership.workspace
    if workspace.is_personal:
        raise WorkspaceError("Your personal workspace cannot be deleted.")
    # The workspace's own events go with it; the deletion itself stays on the actor's account.
    audit.record(
        AuditAction.WORKSPACE_DELETED, request=request, user=membership.user,
        slug=workspace.slug, name=workspace.name,
    )  # fmt: skip
    workspace.delete()


def _lock_memberships(workspace: Workspace) -> list[Membership]:
    """Lock the workspace's memberships so owner-count rules hold under concurrency."""
    return list(Membership.objects.select_for_update().filter(workspace=workspace).order_by("id"))


def _other_owners(memberships: list[Membership], target: Membership) -> int:
    return sum(1 for m in memberships if m.role == Role.OWNER and m.pk != target.pk)


class InvitationPending(WorkspaceError):
    """The address has a pending invitation with another role: ask before replacing it."""

    def __init__(self, pending: Invitation) -> None:
        self.pending = pending
        super().__init__(
            f"{pending.email} already has a pending invitation as"
            f" {pending.get_role_display().lower()}, sent {pending.created_at:%Y-%m-%d %H:%M} UTC."
            " Sending a new one replaces it (the earlier link stops working): check the role"
            " and send again."
        )


@dataclass(frozen=True)
class SentInvitation:
    invitation: Invitation
    token: str
    replaced: Invitation | None


@transaction.atomic
def invite(
    membership: Membership,
    *,
    email: str,
    role: Role,
    replace: bool = False,
    request: HttpRequest | None = None,
) -> SentInvitation:
    """Create an invitation and email its link.

    A pending invitation for the same address is replaced (its link stops working) when the
    role is the same, or when the caller confirmed the change (`replace`); otherwise
    `InvitationPending` asks, so that resending never quietly changes someone's role.
    """
    if not membership.has_role(Role.ADMIN):
        raise WorkspaceError("Only owners and admins can invite people.")
    if role == Role.OWNER and not membership.has_role(Role.OWNER):
        raise WorkspaceError("Only owners can invite owners.")
    workspace = membership.workspace
    email = email.strip().lower()
    if Membership.objects.filter(workspace=workspace, user__email=email).exists():
        raise WorkspaceError(f"{email} is already a member of this workspace.")
    pending = workspace.invitations.pending().select_for_update().filter(email=email).first()
    if pending is not None and pending.role != role and not replace:
        raise InvitationPending(pending)
    workspace.invitations.pending().filter(email=email).update(revoked_at=timezone.now())
    token = Invitation.new_token()
    now = timezone.now()
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by=membership.user,
        created_at=now,
        expires_at=now + settings.INVITATION_TTL,
    )
    audit.record(
        AuditAction.INVITATION_SENT, request=request, actor=membership.user, workspace=workspace,
        email=email, role=role, replaced=str(pending.id) if pending else None,
    )  # fmt: skip
    _mail_on_commit(
        to=email,
        subject=f"{membership.user.name} invited you to {workspace.name} on Refract",
        template="accounts/email/invitation.txt",
        context={
            "invitation": invitation,
            "link": invitation_link(token, request),
            "inviter": membership.user,
        },
    )
    return SentInvitation(invitation, token, pending)


@transaction.atomic
def revoke_invitation(
    membership: Membership, invitation_id: str, *, request: HttpRequest | None = None
) -> None:
    if not membership.has_role(Role.ADMIN):
        raise WorkspaceError("Only owners and admins can revoke invitations.")
    invitation = membership.workspace.invitations.pending().filter(id=invitation_id).first()
    if invitation is None:
        raise WorkspaceError("That invitation is no longer pending.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit.record(
        AuditAction.INVITATION_REVOKED, request=request, workspace=membership.workspace,
        email=invitation.email,
    )  # fmt: skip


def invitation_link(token: str, request: HttpRequest | None = None) -> str:
    return _absolute(reverse("accounts:invitation", args=[token]), request)


def find_invitation(token: str) -> Invitation | None:
    """The invitation a link names, whatever its state, or None for a link that never was."""
    if not token or len(token) > 100:
        return None
    return (
        Invitation.objects.select_related("workspace", "invited_by")
        .filter(token_hash=hash_token(token))
        .first()
    )


def _claim_invitation(token: str, user: User) -> Invitation:
    verification.require_verified(user, "answer an invitation")
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("workspace")
        .filter(token_hash=hash_token(token))
        .first()
    )
    if invitation is None:
        raise WorkspaceError("This invitation link is not valid.")
    if invitation.status == "expired":
        raise WorkspaceError("This invitation has expired. Ask for a new one.")
    if invitation.status != "pending":
        raise WorkspaceError(f"This invitation has been {invitation.status}.")
    if invitation.email != user.email:
        raise WorkspaceError(
            f"This invitation was sent to {invitation.email}. Sign in with that address to"
            " accept it."
        )
    return invitation


@transaction.atomic
def accept_invitation(token: str, user: User, *, request: HttpRequest | None = None) -> Membership:
    invitation = _claim_invitation(token, user)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    membership, _ = Membership.objects.get_or_create(
        workspace=invitation.workspace, user=user, defaults={"role": invitation.role}
    )
    audit.record(
        AuditAction.INVITATION_ACCEPTED, request=request, actor=user, user=user,
        workspace=invitation.workspace, role=membership.role,
    )  # fmt: skip
    return membership


@transaction.atomic
def decline_invitation(token: str, user: User, *, request: HttpRequest | None = None) -> None:
    invitation = _claim_invitation(token, user)
    invitation.declined_at = timezone.now()
    invitation.save(update_fields=["declined_at"])
    audit.record(
        AuditAction.INVITATION_DECLINED, request=request, actor=user, user=user,
        workspace=invitation.workspace,
    )  # fmt: skip


@transaction.atomic
def change_role(
    membership: Membership, target_id: int, role: Role, *, request: HttpRequest | None = None
) -> Membership:
    if not membership.has_role(Role.OWNER):
        raise WorkspaceError("Only owners can change roles.")
    memberships = _lock_memberships(membership.workspace)
    target = next((m for m in memberships if m.pk == target_id), None)
    if target is None:
        raise WorkspaceError("That person is not a member of this workspace.")
    if target.role == Role.OWNER and role != Role.OWNER and not _other_owners(memberships, target):
        raise WorkspaceError("A workspace needs at least one owner. Make someone else owner first.")
    old = target.role
    target.role = role
    target.save(update_fields=["role"])
    audit.record(
        AuditAction.MEMBER_ROLE_CHANGED, request=request, actor=membership.user, user=target.user,
        workspace=membership.workspace, old=old, new=role,
    )  # fmt: skip
    return target


@transaction.atomic
def remove_member(
    membership: Membership, target_id: int, *, request: HttpRequest | None = None
) -> None:
    memberships = _lock_memberships(membership.workspace)
    target = next((m for m in memberships if m.pk == target_id), None)
    if target is None:
        raise WorkspaceError("That person is not a member of this workspace.")
    leaving = target.user_id == membership.user_id
    if not leaving:
        if not membership.has_role(Role.ADMIN):
            raise WorkspaceError("Only owners and admins can remove members.")
        if target.role == Role.OWNER and not membership.has_role(Role.OWNER):
            raise WorkspaceError("Only owners can remove an owner.")
    if target.role == Role.OWNER and not _other_owners(memberships, target):
        raise WorkspaceError(
            "The last owner cannot leave. Make someone else owner first, or delete the workspace."
        )
    target.delete()
    audit.record(
        AuditAction.MEMBER_LEFT if leaving else AuditAction.MEMBER_REMOVED,
        request=request, actor=membership.user, user=target.user, workspace=membership.workspace,
    )  # fmt: skip
