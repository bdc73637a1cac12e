"""Tokens the CLI signs itself (protocol reference 7): cluster tokens for a registry server's
management API (RS256 with its private key, or HS256 with a management API secret) and
service tokens for a service's API (HS256 with the service secret of prisma.yml)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from refract_cli.errors import CliError

# A cluster token lives long enough for one command: a deploy and its migration.
CLUSTER_TOKEN_TTL = 5 * 60
SERVICE_TOKEN_TTL = 7 * 24 * 3600


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def generate_key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


def key_pair_from_pem(private_pem: str, source: str) -> KeyPair:
    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError) as error:
        raise CliError(f"{source} is not a PEM private key without a password: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CliError(f"{source} is not an RSA key (cluster tokens are RS256).")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


@dataclass(frozen=True)
class ManagementCredential:
    """How to sign for one server: `rs256` with a PEM private key, `hs256` with a secret."""

    algorithm: str
    key: str
    source: str  # where it came from, for error messages

    def sign(self, target: str, ttl: int = CLUSTER_TOKEN_TTL) -> str:
        now = int(time.time())
        claims = {"grants": [{"target": target, "action": "*"}], "iat": now, "exp": now + ttl}
        if self.algorithm == "rs256":
            try:
                return jwt.encode(claims, self.key, algorithm="RS256")
            except (ValueError, TypeError) as error:
                raise CliError(
                    f"The private key from {self.source} cannot sign: {error}",
                    hint="clusterSecret must be a PEM private key or the path of one.",
                ) from None
        return jwt.encode(claims, self.key, algorithm="HS256")


def credential_from_secret(cluster_secret: str, source: str) -> ManagementCredential | None:
    """A registry entry's `clusterSecret`: the PEM key itself, a path to it, or a management
    API secret (what the server has as `managementApiSecret`)."""
    value = cluster_secret.strip()
    if not value:
        return None
    if "-----BEGIN" in value:
        return ManagementCredential("rs256", value, source)
    path = Path(value).expanduser()
    if value.startswith(("/", "~", "./")) or value.endswith(".pem"):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise CliError(
                f"Cannot read the private key {path} ({source}): {error.strerror}",
                hint="Fix clusterSecret in ~/.prisma/config.yml, or add the server again"
                " with `refract servers add`.",
            ) from None
        return ManagementCredential("rs256", text, f"{source} ({path})")
    return ManagementCredential("hs256", value, source)


def service_token(secret: str, service: str, stage: str, ttl: int = SERVICE_TOKEN_TTL) -> str:
    """As `prisma1 token` signs it (7.3): the first of the comma-separated secrets."""
    first = next(part.strip() for part in secret.split(",") if part.strip())
    now = int(time.time())
    claims = {
        "data": {"service": f"{service}@{stage}", "roles": ["admin"]},
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, first, algorithm="HS256")
