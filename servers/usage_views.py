"""The usage JSON the service page's graphs and the Services tab read (`servers.usage`).

Both are fetched by the pages after they render, so a slow or silent server never holds a page
(it shows "—" or says why). Members only: anyone else gets a 404, as for the pages."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from accounts.models import Membership
from accounts.views.workspaces import workspace_view
from servers import usage
from servers.models import Service, get_service


@workspace_view()
@require_GET
def service_usage(request: HttpRequest, membership: Membership, service_id: str) -> JsonResponse:
    """`?window=hour|day|week`: the service's series, throttling and operation insights;
    `{"available": false, "reason"}` when its server cannot tell."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    window = request.GET.get("window", "hour")
    try:
        found = usage.service_usage(service, window)
    except ValueError as error:
        return JsonResponse({"error": str(error), "field": "window"}, status=400)
    except usage.UsageUnavailable as error:
        return JsonResponse({"available": False, "reason": str(error)})
    return JsonResponse({"available": True, **found})


@workspace_view()
@require_GET
def services_usage(request: HttpRequest, membership: Membership) -> JsonResponse:
    """Every service of the workspace at a glance, by id (null where its server did not
    answer): one call per server."""
    listed = list(
        Service.objects.for_user(request.user)
        .filter(server__workspace=membership.workspace)
        .exclude(status=Service.Status.DELETING)
        .select_related("server__workspace")
    )
    found = usage.summaries(listed)
    return JsonResponse({"services": {key: s.as_json() if s else None for key, s in found.items()}})
