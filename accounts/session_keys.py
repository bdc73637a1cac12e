"""Session keys: JWTs the console signs for CLIs and CI; only their `jti` is stored.

The Prisma 1 CLI decodes its `cloudSessionKey` and reads `userId`, so the key must be a JWT.
A key is re-signed from its row (`jti`, user, `iat`, `exp`) when it is delivered, which is why
no token is ever stored: HS256 over the same claims gives the same token.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit, verification
from accounts.models import AuditAction, SessionKey, User

ALGORITHM = "HS256"
ISSUER = "refract"
# Writing `last used` on every request would turn every API call into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def signing_key() -> bytes:
    configured = settings.SESSION_KEY_SIGNING_KEY
    if configured:
        return configured.encode()
    # Derived, so rotating SECRET_KEY also invalidates every session key.
    return hmac.new(settings.SECRET_KEY.encode(), b"refract.session-keys", hashlib.sha256).digest()


def _claims(key: SessionKey) -> dict:
    return {
        "userId": str(key.user_id),
        "jti": key.jti,
        "iat": int(key.created_at.timestamp()),
        "exp": int(key.expires_at.timestamp()),
        "iss": ISSUER,
    }


def token_for(key: SessionKey) -> str:
    return jwt.encode(_claims(key), signing_key(), algorithm=ALGORITHM)


def issue(
    user: User,
    *,
    name: str,
    origin: SessionKey.Origin,
    request: HttpRequest | None = None,
) -> tuple[SessionKey, str]:
    """Create a key and return it with its token, which is shown once.

    Only a verified account may: a key outlives a password reset's sessions, so minting one
    must first prove the address (see `accounts.verification`).
    """
    verification.require_verified(user, "create a session key")
    now = timezone.now().replace(microsecond=0)
    key = SessionKey.objects.create(
        user=user,
        jti=secrets.token_urlsafe(24),
        name=name[:200],
        origin=origin,
        created_at=now,
        expires_at=now + settings.SESSION_KEY_TTL,
    )
    audit.record(
        AuditAction.SESSION_KEY_CREATED, request=request, actor=user, user=user,
        key=str(key.id), name=key.name,
    )  # fmt: skip
    return key, token_for(key)


@dataclass(frozen=True)
class KeyCheck:
    key: SessionKey | None
    reason: str = ""


def authenticate(token: str, address: str | None = None) -> KeyCheck:
    """Check signature and expiry, then that the `jti` is live: revocation is immediate."""
    try:
        claims = jwt.decode(
            token,
            signing_key(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "jti", "userId"]},
        )
    except jwt.ExpiredSignatureError:
        return KeyCheck(None, "The session key has expired. Log in again.")
    except jwt.InvalidTokenError:
        return KeyCheck(None, "The session key is not valid.")
    key = (
        SessionKey.objects.select_related("user")
        .filter(jti=claims["jti"], user_id=claims["userId"])
        .first()
    )
    if key is None or not key.is_live or not key.user.is_active:
        return KeyCheck(None, "The session key was revoked or has expired. Log in again.")
    now = timezone.now()
    if (
        key.last_used_at is None
        or now - key.last_used_at >= LAST_USED_RESOLUTION
        or key.last_used_ip != address
    ):
        SessionKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=address)
        key.last_used_at, key.last_used_ip = now, address
    return KeyCheck(key)


def revoke(key: SessionKey, *, request: HttpRequest | None = None) -> bool:
    """Revoke one key; False when it was already revoked (the call is idempotent)."""
    updated = SessionKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if updated:
        audit.record(
            AuditAction.SESSION_KEY_REVOKED, request=request, user=key.user,
            key=str(key.id), name=key.name,
        )  # fmt: skip
    return bool(updated)


@transaction.atomic
def revoke_all(user: User, *, request: HttpRequest | None = None) -> int:
    """Revoke every live key; returns how many (expired keys are dead already)."""
    count = SessionKey.objects.live().filter(user=user).update(revoked_at=timezone.now())
    audit.record(AuditAction.SESSION_KEYS_REVOKED, request=request, user=user, count=count)
    return count


def renew(key: SessionKey, *, request: HttpRequest | None = None) -> str:
    """A fresh key with the same name, replacing `key` (the Prisma CLI's `renewToken`)."""
    with transaction.atomic():
        _, token = issue(
            key.user, name=key.name, origin=SessionKey.Origin(key.origin), request=request
        )
        revoke(key, request=request)
    return token
