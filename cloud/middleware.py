from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


class RequestSizeLimitMiddleware:
    """Refuse bodies over the limit with 413 before anything reads them.

    Django itself would raise RequestDataTooBig (a 400) only once a form is parsed; a clear 413
    up front tells clients exactly what went wrong and keeps big bodies out of memory.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            message = (
                f"The request body is larger than the {limit // 1024} KiB this server accepts."
            )
            if "json" in request.META.get("CONTENT_TYPE", "") or request.path.startswith("/api/"):
                return JsonResponse({"code": "request_too_large", "detail": message}, status=413)
            return HttpResponse(
                render_to_string("413.html", {"message": message}, request=request), status=413
            )
        return self.get_response(request)


class ApiNotFoundMiddleware:
    """An unknown path under /api/ answers the API's JSON error, not the console's HTML page.

    DRF views already answer their own 404s in JSON; this catches what no API route matched
    (Django's resolver), whatever app the path would have belonged to.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            return JsonResponse(
                {"code": "not_found", "detail": f"No API endpoint at {request.path}."},
                status=404,
            )
        return response
