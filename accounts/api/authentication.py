from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from accounts import audit, session_keys
from accounts.models import SessionKey, User


class SessionKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <session key>`; checked against the database on every request."""

    keyword = b"bearer"

    def authenticate(self, request: HttpRequest) -> tuple[User, SessionKey] | None:
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed("Use `Authorization: Bearer <session key>`.")
        try:
            token = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The session key is not valid.") from None
        check = session_keys.authenticate(token, audit.client_address(request))
        if check.key is None:
            raise exceptions.AuthenticationFailed(check.reason)
        return check.key.user, check.key

    def authenticate_header(self, request: HttpRequest) -> str:
        return 'Bearer realm="refract"'


class SessionKeyScheme(OpenApiAuthenticationExtension):
    """Documents the bearer session key in the OpenAPI schema."""

    target_class = SessionKeyAuthentication
    name = "sessionKey"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A key from `prisma1 login` or Settings > CLI sessions and keys.",
        }
