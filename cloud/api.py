"""Shared policy of every REST endpoint: authentication, throttling and the error format."""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, permissions
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler

from accounts.api.authentication import SessionKeyAuthentication


class BaseAPIView(APIView):
    """A bearer session key or a browser session (with CSRF), never both: when an
    `Authorization` header is present, only the key is considered."""

    authentication_classes = [SessionKeyAuthentication, SessionAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    throttle_scope = "api"


def error_body(code: str, detail: object, **extra: object) -> dict:
    return {"code": code, "detail": detail, **extra}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every error is JSON with a stable `code` a client can branch on."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):  # a service's refusal, with its reason
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        response.data = error_body("invalid", "The request has invalid fields.", fields=detail)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        response.data = error_body(code, str(exc.detail))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response.data["retry_after"] = int(exc.wait + 0.999)
    return response


ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a stable `code` to branch on and a `detail` to show.",
    "properties": {
        "code": {"type": "string"},
        "detail": {},
        "fields": {"type": "object", "description": "Per-field messages (`code` invalid)."},
        "retry_after": {"type": "integer", "description": "Seconds to wait (`code` throttled)."},
    },
    "required": ["code", "detail"],
}


def document_errors(result: dict, generator: object, request: object, public: bool) -> dict:
    """drf-spectacular hook: document the errors every endpoint can answer, in one place.

    The shared policy (authentication, throttling, validation, size limit) applies to every
    view, so its answers belong in every operation, not repeated in each `extend_schema`.
    """
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            secured = any(requirement for requirement in operation.get("security", [{}]))
            answers = {
                "406": "The `Accept` header names no type the API answers with (JSON).",
                "429": "Rate limited: wait `retry_after` seconds (`Retry-After`).",
            }
            if "requestBody" in operation:
                answers["400"] = "Invalid input; `fields` says which and why."
                answers["413"] = "The request body is too large."
            if secured:
                answers["401"] = "No credentials, or a session key that is not valid."
                answers["403"] = "Not allowed (or a browser session without a CSRF token)."
            if "{" in path:
                answers["404"] = "Nothing with that id among your own."
            for status, description in answers.items():
                responses.setdefault(status, {"description": description, "content": error})
    return result
