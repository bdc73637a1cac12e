"""Management tokens the console signs for servers: short-lived RS256 JWTs with narrow grants.

A sandbox region knows only the platform's public key (`PLATFORM_PRIVATE_KEY` signs); a private
or self-hosted server knows its own key pair's public half, or a management secret (HS256, as
the Prisma CLI signs with `PRISMA_MANAGEMENT_API_SECRET`). Grants name exactly one
`service/stage`; on a sandbox the service part is the project name `<workspace>~<service>`, so
a token for one workspace never opens another's projects.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from servers.models import Server

# Long enough for one deploy's calls and polling; the console signs a fresh one per task.
TOKEN_TTL_SECONDS = 300
# Prisma's rules for names (NameConstraints.scala), without `~`: the console adds the workspace.
SERVICE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")
STAGE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,29}$")


class PlatformKeyMissing(ImproperlyConfigured):
    pass


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def generate_key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


@lru_cache(maxsize=64)
def _load_private_key(pem: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"not a PEM private key without passphrase: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ImproperlyConfigured("the key must be an RSA private key (RS256)")
    return key


def platform_private_key() -> rsa.RSAPrivateKey:
    """The platform's key, which every sandbox region's `managementPublicKey` matches."""
    pem = settings.PLATFORM_PRIVATE_KEY
    if not pem:
        raise PlatformKeyMissing(
            "PLATFORM_PRIVATE_KEY (or PLATFORM_PRIVATE_KEY_FILE) is not set: the console cannot"
            " sign management tokens for sandbox regions"
        )
    try:
        return _load_private_key(pem)
    except ImproperlyConfigured as exc:
        raise PlatformKeyMissing(f"PLATFORM_PRIVATE_KEY: {exc}") from None


def validate_service_stage(service: str, stage: str) -> None:
    if not SERVICE_RE.match(service):
        raise ValueError(f"{service!r} is not a service name (a letter, then letters, digits, - _)")
    if not STAGE_RE.match(stage):
        raise ValueError(f"{stage!r} is not a stage (a letter, then up to 29 letters, digits, - _)")


def sign(server: Server, grants: list[dict[str, str]], ttl: int = TOKEN_TTL_SECONDS) -> str:
    now = int(time.time())
    claims = {"grants": grants, "iat": now, "exp": now + ttl}
    if server.kind == Server.Kind.SANDBOX:
        return jwt.encode(claims, platform_private_key(), algorithm="RS256")
    if server.private_key:
        return jwt.encode(claims, _load_private_key(server.private_key_pem), algorithm="RS256")
    if server.management_secret:
        return jwt.encode(claims, server.management_secret_value, algorithm="HS256")
    raise ImproperlyConfigured(f"server {server.id} has no credentials to sign with")


def rotation_token(server: Server, ttl: int = TOKEN_TTL_SECONDS) -> str:
    """A `*/*` token signed with the next key pair of a rotation in progress: what proves the
    server has the new public key before the console signs with it for good."""
    if not server.next_private_key:
        raise ValueError(f"server {server.id} has no key rotation in progress")
    now = int(time.time())
    claims = {"grants": [{"target": "*/*", "action": "*"}], "iat": now, "exp": now + ttl}
    return jwt.encode(claims, _load_private_key(server.next_private_key_pem), algorithm="RS256")


def cluster_token(server: Server, service: str, stage: str, ttl: int = TOKEN_TTL_SECONDS) -> str:
    """A token for exactly one `service/stage` of the server (the CLI's `generateClusterToken`)."""
    validate_service_stage(service, stage)
    target = f"{server.project_name(service)}/{stage}"
    return sign(server, [{"target": target, "action": "*"}], ttl)


def server_token(server: Server, ttl: int = TOKEN_TTL_SECONDS) -> str:
    """A token for everything the console may do on a server: `<workspace>~*/*` on a shared
    sandbox (`workspace_token`), `*/*` on a private or self-hosted server, which belongs to one
    workspace and answers only to its own key pair or secret."""
    if server.kind == Server.Kind.SANDBOX:
        return workspace_token(server, ttl)
    return sign(server, [{"target": "*/*", "action": "*"}], ttl)


def workspace_token(server: Server, ttl: int = TOKEN_TTL_SECONDS) -> str:
    """A token for every service of the workspace on its sandbox (`<workspace>~*/*`): lists
    and checks the workspace's own projects, and only those."""
    if server.kind != Server.Kind.SANDBOX:
        raise ValueError("a workspace-wide token exists only for sandboxes")
    return sign(server, [{"target": f"{server.workspace.slug}~*/*", "action": "*"}], ttl)


OPERATOR_AUDIENCE = "refract-operator"


def operator_token(ttl: int = 60) -> str:
    """A token for the platform runtime's operator API (adding and removing private servers):
    signed with the platform's key like a sandbox's tokens, but with the operator audience and
    no grants, so it opens nothing on a management API and no management token opens the
    operator API."""
    now = int(time.time())
    claims = {"aud": OPERATOR_AUDIENCE, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, platform_private_key(), algorithm="RS256")
