"""Account and workspace workflows. Views and APIs call these; they hold the rules."""

import re
import secrets

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts import audit
from accounts.models import (
    AuditAction,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
    hash_token,
)

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


@transaction.atomic
def sign_up(*, email: str, name: str, password: str, request: HttpRequest | None = None) -> User:
    user = User.objects.create_user(email=email, password=password, name=name)
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
    return user


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


@transaction.atomic
def invite(
    membership: Membership, *, email: str, role: Role, request: HttpRequest | None = None
) -> tuple[Invitation, str]:
    """Create an invitation and email its link. Returns the invitation and its raw token."""
    if not membership.has_role(Role.ADMIN):
        raise WorkspaceError("Only owners and admins can invite people.")
    if role == Role.OWNER and not membership.has_role(Role.OWNER):
        raise WorkspaceError("Only owners can invite owners.")
    workspace = membership.workspace
    email = email.strip().lower()
    if Membership.objects.filter(workspace=workspace, user__email=email).exists():
        raise WorkspaceError(f"{email} is already a member of this workspace.")
    # A new invitation replaces any pending one for the same address.
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
        email=email, role=role,
    )  # fmt: skip
    link = invitation_link(token, request)
    context = {"invitation": invitation, "link": link, "inviter": membership.user}
    transaction.on_commit(
        lambda: send_mail(
            subject=f"{membership.user.name} invited you to {workspace.name} on Refract",
            message=render_to_string("accounts/email/invitation.txt", context),
            from_email=None,
            recipient_list=[email],
        )
    )
    return invitation, token


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
    path = reverse("accounts:invitation", args=[token])
    return request.build_absolute_uri(path) if request else f"{settings.SITE_URL}{path}"


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
