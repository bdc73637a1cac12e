"""Writing and reading the audit trail."""

from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import AUTH_ACTIONS, AuditAction, AuditEvent, User, Workspace
from cloud.net import client_address  # the one rule for a client's address (callers use it)


def record(
    action: AuditAction,
    *,
    request: HttpRequest | None = None,
    actor: User | None = None,
    user: User | None = None,
    workspace: Workspace | None = None,
    email: str = "",
    **detail: object,
) -> AuditEvent:
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        user=user,
        workspace=workspace,
        email=email or (user.email if user else ""),
        ip_address=client_address(request),
        user_agent=(request.META.get("HTTP_USER_AGENT", "") if request else "")[:300],
        detail=detail,
    )


def workspace_trail(workspace: Workspace) -> QuerySet[AuditEvent]:
    """The workspace's own events, plus the account events of its current members."""
    members = workspace.memberships.values("user_id")
    return (
        AuditEvent.objects.filter(
            Q(workspace=workspace)
            | Q(workspace__isnull=True, action__in=AUTH_ACTIONS, user_id__in=members)
        )
        .select_related("actor", "user", "workspace")
        .order_by("-created_at")
    )


def account_trail(user: User) -> QuerySet[AuditEvent]:
    return (
        AuditEvent.objects.filter(Q(user=user) | Q(actor=user))
        .select_related("actor", "user", "workspace")
        .order_by("-created_at")
    )
