from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import audit, cli_login, session_keys
from accounts.api.serializers import (
    CliLoginKeySerializer,
    CliLoginPollSerializer,
    CliLoginStartedSerializer,
    CliLoginStartSerializer,
    CreatedSessionKeySerializer,
    MeSerializer,
    SessionKeyCreateSerializer,
    SessionKeySerializer,
)
from accounts.models import SessionKey
from accounts.verification import EmailNotVerified
from cloud.api import BaseAPIView, error_body


class MeView(BaseAPIView):
    @extend_schema(responses=MeSerializer, summary="The signed-in user and their workspaces")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


def _current_key(request: Request) -> SessionKey | None:
    return request.auth if isinstance(request.auth, SessionKey) else None


class SessionKeyListView(BaseAPIView):
    @extend_schema(responses=SessionKeySerializer(many=True), summary="List your session keys")
    def get(self, request: Request) -> Response:
        keys = SessionKey.objects.live().filter(user=request.user)
        context = {"current_key": _current_key(request)}
        return Response(SessionKeySerializer(keys, many=True, context=context).data)

    @extend_schema(
        request=SessionKeyCreateSerializer,
        responses={
            201: CreatedSessionKeySerializer,
            403: OpenApiResponse(description="`email_unverified`: verify the address first"),
        },
        summary="Create a key (for CI); the key is in the answer, once",
    )
    def post(self, request: Request) -> Response:
        serializer = SessionKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            key, token = session_keys.issue(
                request.user,
                name=serializer.validated_data["name"],
                origin=SessionKey.Origin.API,
                request=request,
            )
        except EmailNotVerified as refusal:
            return Response(
                error_body(refusal.code, str(refusal)), status=status.HTTP_403_FORBIDDEN
            )
        key.key = token
        return Response(CreatedSessionKeySerializer(key).data, status=status.HTTP_201_CREATED)


class SessionKeyDetailView(BaseAPIView):
    @extend_schema(responses={204: None}, summary="Revoke one of your keys")
    def delete(self, request: Request, key_id: str) -> Response:
        key = get_object_or_404(SessionKey.objects.live(), pk=key_id, user=request.user)
        session_keys.revoke(key, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CurrentSessionKeyView(BaseAPIView):
    @extend_schema(
        responses={
            204: None,
            400: OpenApiResponse(description="`no_session_key`: not made with a session key"),
        },
        summary="Revoke the key making this request (logout)",
    )
    def delete(self, request: Request) -> Response:
        key = _current_key(request)
        if key is None:
            return Response(
                error_body("no_session_key", "This request was not made with a session key."),
                status=status.HTTP_400_BAD_REQUEST,
            )
        session_keys.revoke(key, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RevokeAllSessionKeysView(BaseAPIView):
    @extend_schema(
        request=None,
        responses={200: inline_serializer("RevokedKeys", {"revoked": serializers.IntegerField()})},
        summary="Revoke all of your keys",
    )
    def post(self, request: Request) -> Response:
        count = session_keys.revoke_all(request.user, request=request)
        return Response({"revoked": count})


class CliLoginStartView(BaseAPIView):
    """Start a device-flow login (RFC 8628): the CLI shows the user code and polls."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    # Starts are limited in `cli_login.start`, which the cloud API's requestCloudToken shares.
    throttle_classes = []

    @extend_schema(
        request=CliLoginStartSerializer,
        responses={
            201: CliLoginStartedSerializer,
            429: OpenApiResponse(description="`too_many_requests`: too many logins started"),
        },
        summary="Start a CLI login",
    )
    def post(self, request: Request) -> Response:
        serializer = CliLoginStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            login, secret = cli_login.start(
                client_name=serializer.validated_data["client_name"],
                client_host=serializer.validated_data["host"],
                client_ip=audit.client_address(request),
            )
        except cli_login.LoginRequestError as refused:
            return Response(
                error_body(refused.code, str(refused), retry_after=refused.retry_after),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(refused.retry_after)},
            )
        verification_uri = request.build_absolute_uri(reverse("accounts:device"))
        body = {
            "device_code": secret,
            "user_code": cli_login.format_user_code(login.user_code),
            "verification_uri": verification_uri,
            "verification_uri_complete": f"{verification_uri}?code={login.user_code}",
            "interval": login.poll_interval,
            "expires_in": int(settings.CLI_LOGIN_TTL.total_seconds()),
        }
        return Response(CliLoginStartedSerializer(body).data, status=status.HTTP_201_CREATED)


POLL_MESSAGES = {
    "authorization_pending": "Waiting for the user to approve in the browser.",
    "slow_down": "Polling too fast: wait `interval` seconds between polls.",
    "access_denied": "The user denied this login.",
    "expired_token": "The login request expired. Start a new one.",
    "invalid_grant": "Unknown or already used device code.",
}


class CliLoginPollView(BaseAPIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]
    throttle_scope = "cli_login_poll"

    @extend_schema(
        request=CliLoginPollSerializer,
        responses={
            200: CliLoginKeySerializer,
            400: OpenApiResponse(description="`code` is one of " + ", ".join(POLL_MESSAGES)),
        },
        summary="Poll a CLI login; the key is in the first answer after approval, once",
    )
    def post(self, request: Request) -> Response:
        serializer = CliLoginPollSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = cli_login.poll(serializer.validated_data["device_code"], enforce_interval=True)
        if result.token:
            return Response({"key": result.token, "token_type": "Bearer"})
        extra = {"interval": result.interval} if result.interval else {}
        return Response(
            error_body(result.status, POLL_MESSAGES[result.status], **extra),
            status=status.HTTP_400_BAD_REQUEST,
        )
