"""Email verification: signed, expiring links, and the guard the privileged actions share.

Until the owner of an address proves it, anyone could have typed it at sign-up. Such an account
may use the console but may not mint session keys, approve CLI logins or answer invitations:
those are the ways a squatter would keep access after the real owner takes the address back.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import User

SALT = "refract.accounts.email-verification"


class EmailNotVerified(PermissionDenied):
    """The account has not verified its address; the message says what to do."""

    code = "email_unverified"

    def __init__(self, action: str) -> None:
        super().__init__(
            f"Verify your email address before you {action}. Follow the link we emailed you,"
            " or send a new one from the banner at the top of the console."
        )


def require_verified(user: User, action: str) -> None:
    if not user.is_verified:
        raise EmailNotVerified(action)


def make_token(user: User, next_path: str = "") -> str:
    """A link token bound to the account and its address; `next_path` is where to go after."""
    payload = {"u": str(user.pk), "e": user.email}
    if next_path:
        payload["n"] = next_path
    return signing.dumps(payload, salt=SALT, compress=True)


@dataclass(frozen=True)
class Claim:
    user: User
    next_path: str


def read_token(token: str) -> Claim | None:
    """The account a link names, or None when it is forged, expired or its address changed."""
    if not token or len(token) > 500:
        return None
    try:
        payload = signing.loads(
            token, salt=SALT, max_age=settings.EMAIL_VERIFICATION_TTL.total_seconds()
        )
        user = User.objects.filter(pk=payload["u"], is_active=True).first()
    except (signing.BadSignature, KeyError, TypeError, ValueError, ValidationError):
        return None
    if user is None or user.email != payload.get("e"):
        return None
    return Claim(user, str(payload.get("n") or ""))
