"""Shared policy of every REST endpoint: authentication, throttling and the error format."""

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
