"""Authentication: management tokens (grants) and service tokens (project secrets).

Management tokens follow Prisma's `SymmetricManagementAuth` (HS256 with `managementApiSecret`)
and the key-pair model of Prisma Cloud (RS256, verified with the configured public key). The
failure messages are Prisma's, word for word: the CLI looks for "decoded" to explain a missing
or wrong `PRISMA_MANAGEMENT_API_SECRET`.
"""

from __future__ import annotations

import functools
import re
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jwt.warnings import InsecureKeyLengthWarning

from runtime.config import AuthConfig, pem_blocks
from runtime.errors import InvalidToken, PrismaError

# Prisma accepts management and service secrets of any length, and so must we; PyJWT's warning
# about short HMAC keys would only fill the logs.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

# An error message, not a password.
SERVICE_TOKEN_INVALID = "Your token is invalid. It might have expired or you might be using a token from a different project."  # noqa: E501, S105


def _bearer(header: str) -> str:
    return header[len("Bearer ") :] if header.startswith("Bearer ") else header


def _java_split(text: str, separator: str) -> list[str]:
    """Java's `String.split`: trailing empty parts are dropped (but "" stays [""])."""
    parts = text.split(separator)
    while len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if parts == [""] and text:
        return []
    return parts


# Refract's extension for shared sandboxes: `<workspace>~*` names every service of a workspace,
# the projects `<workspace>~<service>` its routes lead to. A slug has no `~`, so `acme~*` never
# reaches `acmecorp~...`.
WORKSPACE_GRANT = re.compile(r"([a-z0-9-]+)~\*")


def verify_management(
    auth: AuthConfig, authorization: str | None, service: str, stage: str
) -> None:
    """Allow the call for (service, stage) or raise `InvalidToken` (code 3015).

    `("", "")` is what Prisma checks for server-wide calls (`setCloudSecret`; `listProjects`
    goes through `listing_filter`): only a `*/*` grant passes, because an empty requested name
    equals no concrete grant and starts no workspace's `<workspace>~`.
    """
    if auth.is_open:
        return
    grants = management_grants(auth, authorization)
    if not any(_grant_matches(grant, service, stage) for grant in grants):
        raise _none_satisfied(grants)


@dataclass(frozen=True)
class Listing:
    """What `listProjects` shows a caller: everything, or the projects its grants allow."""

    everything: bool
    grants: tuple[dict[str, Any], ...] = ()

    def allows(self, service: str, stage: str) -> bool:
        return self.everything or any(_grant_matches(g, service, stage) for g in self.grants)


def management_listing(auth: AuthConfig, authorization: str | None) -> Listing:
    """Which projects `listProjects` shows the caller, or `InvalidToken` (code 3015).

    As Prisma: open mode or a `*/*` grant lists everything, and a token without one is refused.
    A token with workspace grants (`<workspace>~*/...`) lists what its grants allow instead,
    so the console can list a workspace's services on a shared sandbox and no one else's.
    """
    if auth.is_open:
        return Listing(everything=True)
    grants = management_grants(auth, authorization)
    # In order, as `verify_management` goes: an invalid grant before `*/*` is refused.
    if any(_grant_matches(grant, "", "") for grant in grants):
        return Listing(everything=True)
    # No grant matched, so every one was checked and none is invalid.
    if not any(WORKSPACE_GRANT.fullmatch(_target_parts(grant)[0]) for grant in grants):
        raise _none_satisfied(grants)
    return Listing(everything=False, grants=tuple(grants))


def _target_parts(grant: dict[str, Any]) -> list[str]:
    return _java_split(grant["target"], "/")


def _grant_matches(grant: dict[str, Any], service: str, stage: str) -> bool:
    """Prisma's test of one grant (exact or `*` for each part), plus workspace grants; raises
    Prisma's `InvalidToken` for a grant of the wrong shape."""
    parts = _target_parts(grant)
    if len(parts) != 2:
        raise _invalid_grant(parts)
    granted_service, granted_stage = parts
    if not granted_service or not granted_stage:
        raise InvalidToken(
            "Both service and stage must be defined in grant "
            f"'TokenGrant({grant['target']},{grant['action']})'"
        )
    workspace = None
    if granted_service.endswith("~*"):
        # Refract's workspace form: a slug of the wrong shape is an invalid grant, whatever
        # is asked for (Prisma would never match it: no service name holds a `*`).
        found = WORKSPACE_GRANT.fullmatch(granted_service)
        if found is None:
            raise _invalid_grant(parts)
        workspace = found.group(1)
    if granted_stage not in ("*", stage):
        return False
    if workspace is not None:
        return service.startswith(f"{workspace}~")
    return granted_service in ("*", service)


def _invalid_grant(parts: list[str]) -> InvalidToken:
    return InvalidToken(f"Contained invalid grant 'Vector({', '.join(parts)})'")


def _none_satisfied(grants: list[dict[str, Any]]) -> InvalidToken:
    return InvalidToken(f"Token contained {len(grants)} grants but none satisfied the request.")


def management_grants(auth: AuthConfig, authorization: str | None) -> list[dict[str, Any]]:
    """The grants of a valid management token: signature, expiry and the claims' shape checked,
    or `InvalidToken` (code 3015). Needs nothing of the request but its header, so the app
    checks a token before it reads the body; which service a grant covers is checked per
    operation (`verify_management`)."""
    if not authorization:
        raise InvalidToken("'Authorization' header not provided")
    token = _bearer(authorization)
    claims = _decode(auth, token)
    grants = claims.get("grants")
    if (
        not isinstance(grants, list)
        or "exp" not in claims
        or not all(
            isinstance(g, dict) and isinstance(g.get("target"), str) and "action" in g
            for g in grants
        )
    ):
        raise InvalidToken("Failed to parse token data")
    if isinstance(claims["exp"], int | float) and claims["exp"] < time.time():
        raise PrismaError(3016, "Authentication token is expired")
    return grants


def _decode(auth: AuthConfig, token: str) -> dict:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"Token can't be decoded: {exc}") from None
    algorithm = header.get("alg")
    if algorithm == "HS256" and auth.management_secret:
        keys: tuple[Any, ...] = (auth.management_secret,)
    elif algorithm == "RS256" and auth.management_public_key:
        keys = _public_keys(auth.management_public_key)
    else:
        expected = " or ".join(
            name
            for name, configured in (
                ("HS256", auth.management_secret),
                ("RS256", auth.management_public_key),
            )
            if configured
        )
        raise InvalidToken(
            f"Token can't be decoded: JwtValidationException: the algorithm {algorithm} is not "
            f"accepted here (expected {expected})"
        )
    claims = None
    for key in keys:  # several public keys while one is rotated out
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options={"require": [], "verify_aud": False, "verify_iat": False},
            )
            break
        except jwt.ExpiredSignatureError:
            expired = jwt.decode(token, options={"verify_signature": False}).get("exp", 0)
            since = datetime.fromtimestamp(float(expired), UTC).isoformat().replace("+00:00", "Z")
            raise InvalidToken(
                f"Token can't be decoded: The token is expired since {since}"
            ) from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"Token can't be decoded: {exc}") from None
    if claims is None:
        raise InvalidToken("Token can't be decoded: Invalid signature for this token")
    if not isinstance(claims, dict):
        raise InvalidToken("Failed to parse token data")
    audience = claims.get("aud")
    if OPERATOR_AUDIENCE in (audience if isinstance(audience, list) else [audience]):
        # An operator token, signed with the same platform key, grants nothing here.
        raise InvalidToken("Token can't be decoded: an operator token is not a management token")
    return claims


OPERATOR_AUDIENCE = "refract-operator"


@functools.lru_cache(maxsize=256)
def _public_keys(text: str) -> tuple[Any, ...]:
    """The loaded keys of a PEM text (one or several blocks); a block that does not load is
    passed on as text, so PyJWT reports it as before."""
    keys: list[Any] = []
    for block in pem_blocks(text) or (text,):
        try:
            keys.append(serialization.load_pem_public_key(block.encode()))
        except (ValueError, TypeError):
            keys.append(block)
    return tuple(keys)


def verify_operator(public_keys: tuple[str, ...], authorization: str | None) -> dict[str, Any]:
    """The claims of a valid operator token (RS256 with one of the platform's keys, `aud`
    `refract-operator`, `exp` set), or `PermissionError` with the reason."""
    if not authorization or not authorization.startswith("Bearer "):
        raise PermissionError("an `Authorization: Bearer <token>` header is required")
    token = authorization[len("Bearer ") :].strip()
    reason = "the token's signature does not verify with the operator key"
    for key in _public_keys("".join(public_keys)):
        try:
            return jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=OPERATOR_AUDIENCE,
                options={"require": ["exp", "aud"]},
            )
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise PermissionError("the token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise PermissionError(f"the token has no `{exc.claim}` claim") from None
        except jwt.InvalidAudienceError:
            raise PermissionError(
                f"the token's audience (`aud`) is not {OPERATOR_AUDIENCE}"
            ) from None
        except jwt.PyJWTError as exc:
            raise PermissionError(f"the token is invalid: {exc}") from None
    raise PermissionError(reason)


def verify_service(secrets: list[str], authorization: str | None) -> None:
    """A service with secrets needs an HS256 token signed with any of them (claims unchecked)."""
    if not secrets:
        return
    if not authorization:
        raise PrismaError(3015, SERVICE_TOKEN_INVALID)
    token = _bearer(authorization)
    for secret in secrets:
        try:
            jwt.decode(
                token, secret, algorithms=["HS256"], options={"verify_aud": False, "require": []}
            )
            return
        except jwt.PyJWTError:
            continue
    raise PrismaError(3015, SERVICE_TOKEN_INVALID)


def project_token(secrets: list[str], now: float | None = None) -> str:
    """`generateProjectToken`: HS256 with the first secret, valid one day; "" without secrets."""
    if not secrets:
        return ""
    issued = int(now if now is not None else time.time())
    return jwt.encode({"exp": issued + 86400, "nbf": issued}, secrets[0], algorithm="HS256")
