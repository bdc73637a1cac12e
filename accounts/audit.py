"""Writing and reading the audit trail."""

from django.conf import settings
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from accounts.models import AUTH_ACTIONS, AuditAction, AuditEvent, User, Workspace


def client_address(request: HttpRequest | None) -> str | None:
    """The client's address, for the audit trail and the per-address sign-in throttle.

    With `TRUSTED_PROXY_COUNT` proxies in front, the client is the entry that many places from
    the right of X-Forwarded-For: entries further left were written by the client itself and
    would let it pick its own address. Without proxies REMOTE_ADDR is the client.
    """
    if request is None:
        return None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        chain = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        chain = [hop for hop in chain if hop]
        if len(chain) >= proxies:
            return chain[-proxies] or None
    return request.META.get("REMOTE_ADDR") or None


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
