from django.http import HttpRequest

from accounts.models import Membership

CURRENT_WORKSPACE = "current_workspace"


def navigation(request: HttpRequest) -> dict:
    """The workspace switcher: the user's workspaces and the one they are in."""
    user = getattr(request, "user", None)  # absent when middleware answered early
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(
        Membership.objects.filter(user=request.user)
        .select_related("workspace")
        .order_by("-workspace__is_personal", "workspace__name")
    )
    slug = getattr(request, "workspace_slug", None) or request.session.get(CURRENT_WORKSPACE)
    current = next((m for m in memberships if m.workspace.slug == slug), None)
    if current is None and memberships:
        current = memberships[0]
    return {
        "nav_memberships": memberships,
        "nav_workspace": current.workspace if current else None,
    }
