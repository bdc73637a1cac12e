"""Configuration in Prisma's own format, plus Refract's additions, read into typed tenants.

A Prisma user's `PRISMA_CONFIG` (reference section 10) works unchanged: `port`,
`managementApiSecret` and `databases.default`. Beside those keys Refract reads
`managementPublicKey` (PEM, RS256 cluster tokens; several concatenated PEM blocks are several
keys, any of which verifies a token, for key rotation; Prisma's old `legacySecret` is accepted as
an alias), `redisUrl`, `limits`, `sandbox`, `hosts` (the host names the config's own server
answers on; default `["*"]`, any), `operator` (the operator API, `runtime.operator`),
`consoleUrl` (the Refract console that `<endpoint>/_admin` sends browsers to) and
`playgroundAssets` (the directory of the vendored GraphiQL, `runtime.playground`).

Internally the runtime serves *servers* (tenants), each with its database, auth settings, limits
and host names. The config describes the default server; the operator API registers more at
run time (`runtime.registry`), and the rest of the runtime does not tell them apart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from psycopg.conninfo import make_conninfo


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


@dataclass(frozen=True)
class DatabaseConfig:
    host: str = "localhost"
    port: int = 5432
    user: str = "prisma"
    password: str = ""
    database: str = "prisma"
    schema: str | None = None
    management_schema: str = "management"
    connection_limit: int = 10
    sslmode: str = "prefer"  # libpq's; Prisma's `ssl: true` means `require`

    def conninfo(self, database: str | None = None, connect_timeout: int | None = None) -> str:
        """libpq connection string; a host starting with `/` is a unix-socket directory."""
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            user=self.user,
            password=self.password or None,
            dbname=database or self.database,
            sslmode=self.sslmode,
            application_name="refract-runtime",
            connect_timeout=str(connect_timeout) if connect_timeout else None,
        )


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PEM_BLOCK = re.compile(
    r"-----BEGIN ((?:RSA )?)PUBLIC KEY-----.+?-----END \1PUBLIC KEY-----", re.DOTALL
)


def pem_blocks(text: str | None) -> tuple[str, ...]:
    """The public keys of a PEM text holding one or several blocks (key rotation)."""
    return tuple(m.group(0) for m in PEM_BLOCK.finditer(text or ""))


@dataclass(frozen=True)
class AuthConfig:
    """Management API auth: HS256 with the secret, RS256 with the public key, or open."""

    management_secret: str | None = None
    management_public_key: str | None = None  # one or several PEM blocks

    @property
    def is_open(self) -> bool:
        return not self.management_secret and not self.management_public_key

    @property
    def public_keys(self) -> tuple[str, ...]:
        return pem_blocks(self.management_public_key)


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of a shared sandbox (enforced from the next issue on; parsed here)."""

    rate: int = 10
    per_seconds: float = 10.0
    max_waiting: int = 25
    storage_bytes: int = 100 * 1024 * 1024
    # Root fields a document may select (fragments expanded): each is a statement, and a
    # document is one request to the throttle.
    root_fields: int = 25


# A sandbox's defaults for the data API's cost limits (a server without `sandbox` has none).
SANDBOX_STATEMENT_TIMEOUT_MS = 10_000
SANDBOX_RESPONSE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """`limits`. `statement_timeout_ms` bounds each statement of a service request (the data API,
    `/private`, `/import`, `/export`; never the management API) and `response_bytes` the JSON a
    data API request answers; None means no limit."""

    datamodel_bytes: int = 1_000_000
    datamodel_types: int = 500
    request_bytes: int = 16 * 1024 * 1024
    statement_timeout_ms: int | None = None
    response_bytes: int | None = None


@dataclass(frozen=True)
class ServerConfig:
    """One tenant: a Prisma server as its users see it."""

    name: str
    database: DatabaseConfig
    auth: AuthConfig = field(default_factory=AuthConfig)
    limits: Limits = field(default_factory=Limits)
    sandbox: SandboxLimits | None = None
    hosts: tuple[str, ...] = ("*",)

    def answers(self, host: str) -> bool:
        hostname = host.rsplit(":", 1)[0].lower() if host else ""
        return "*" in self.hosts or hostname in self.hosts


@dataclass(frozen=True)
class OperatorConfig:
    """`operator`: the operator API (`runtime.operator`) and its registry (`runtime.registry`).
    Tokens are RS256, verified with any of `public_keys`; database passwords and management
    secrets in the registry are encrypted with the first of `encryption_keys` (Fernet) and
    decrypted with any of them."""

    public_keys: tuple[str, ...]
    encryption_keys: tuple[str, ...]
    idle_seconds: float = 300.0


# Generated APIs a process keeps, one per distinct datamodel in use (`apiCacheSize`). An API
# holds what its requests have touched of the schema (~0.5 to 5 MB; up to 8 MB for 30 types
# once introspected) and its document and statement caches; one not kept is built again on its
# next request (tens of milliseconds for 30 types).
API_CACHE_SIZE = 128


@dataclass(frozen=True)
class UsageConfig:
    """`usage`: what the runtime counts per service and minute (`runtime.usage`), and `metrics`:
    `GET /metrics` in Prometheus' text format. Counting is on unless `usage.enabled` is false;
    `/metrics` is off unless `metrics.enabled` is true, as it names every service of the server.
    `operations_per_minute` bounds the distinct operations kept per service and minute (by each
    process; the rest fold into one "other" row) and `metrics_services` the services `/metrics`
    labels (the least busy fold into `service="other"`)."""

    enabled: bool = True
    operations_per_minute: int = 100
    retention_days: float = 8.0
    metrics_enabled: bool = False
    metrics_token: str | None = None
    metrics_services: int = 500


@dataclass(frozen=True)
class RuntimeConfig:
    port: int = 4466
    servers: tuple[ServerConfig, ...] = ()
    redis_url: str | None = None
    operator: OperatorConfig | None = None
    # The browser pages (`runtime.playground`): where `/_admin` redirects, and the GraphiQL
    # files; None means the default, the repository's `static/vendor/graphiql`.
    console_url: str | None = None
    playground_assets: Path | None = None
    api_cache_size: int = API_CACHE_SIZE
    usage: UsageConfig = field(default_factory=UsageConfig)

    def server_for_host(self, host: str) -> ServerConfig | None:
        """The tenant for a request's Host header: exact names first, then a catch-all."""
        hostname = host.rsplit(":", 1)[0].lower() if host else ""
        for server in self.servers:
            if hostname in server.hosts:
                return server
        return next((s for s in self.servers if "*" in s.hosts), None)


def load_config(environ: dict[str, str] | None = None, path: str | None = None) -> RuntimeConfig:
    """Prisma's lookup order: `PRISMA_CONFIG` (YAML text), then the file `PRISMA_CONFIG_PATH`."""
    env = os.environ if environ is None else environ
    if path:
        text = Path(path).read_text()
    elif env.get("PRISMA_CONFIG"):
        text = env["PRISMA_CONFIG"]
    elif env.get("PRISMA_CONFIG_PATH"):
        text = Path(env["PRISMA_CONFIG_PATH"]).read_text()
    else:
        raise ConfigError(
            "Unable to load Prisma config: set PRISMA_CONFIG (YAML) or PRISMA_CONFIG_PATH"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Unable to load Prisma config: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("Unable to load Prisma config: the YAML must be a mapping")
    return parse_config(data, env)


def parse_config(data: dict[str, Any], env: dict[str, str] | os._Environ[str]) -> RuntimeConfig:
    port = _int(data, "port", int(env.get("PORT", 4466)))
    databases = data.get("databases")
    if not isinstance(databases, dict) or not databases:
        raise ConfigError("Unable to load Prisma config: `databases` must have a `default` entry")
    name, raw = next(iter(databases.items()))
    if not isinstance(raw, dict):
        raise ConfigError(f"Unable to load Prisma config: `databases.{name}` must be a mapping")
    database = _database(name, raw)
    secret = data.get("managementApiSecret") or env.get("PRISMA_MANAGEMENT_API_JWT_SECRET")
    public_key = data.get("managementPublicKey") or data.get("legacySecret")
    auth = AuthConfig(
        management_secret=str(secret) if secret else None,
        management_public_key=_public_key(public_key),
    )
    sandbox_data = data.get("sandbox")
    on_sandbox = sandbox_data not in (None, False)
    limits_data = data.get("limits") or {}
    limits = Limits(
        datamodel_bytes=_int(limits_data, "datamodelBytes", Limits.datamodel_bytes),
        datamodel_types=_int(limits_data, "datamodelTypes", Limits.datamodel_types),
        request_bytes=_int(limits_data, "requestBytes", Limits.request_bytes),
        statement_timeout_ms=_optional_limit(
            limits_data, "statementTimeoutMs", SANDBOX_STATEMENT_TIMEOUT_MS if on_sandbox else None
        ),
        response_bytes=_optional_limit(
            limits_data, "responseBytes", SANDBOX_RESPONSE_BYTES if on_sandbox else None
        ),
    )
    sandbox = None
    if sandbox_data not in (None, False):  # `sandbox: {}` or `sandbox: true` mean the defaults
        sandbox_data = sandbox_data if isinstance(sandbox_data, dict) else {}
        sandbox = SandboxLimits(
            rate=_int(sandbox_data, "rate", SandboxLimits.rate),
            per_seconds=float(sandbox_data.get("perSeconds", SandboxLimits.per_seconds)),
            max_waiting=_int(sandbox_data, "maxWaiting", SandboxLimits.max_waiting),
            storage_bytes=round(_number(sandbox_data, "storageMb", 100) * 1024 * 1024),
            root_fields=_int(sandbox_data, "rootFields", SandboxLimits.root_fields),
        )
        if sandbox.root_fields < 1:
            raise ConfigError("Unable to load Prisma config: `rootFields` must be at least 1")
        if not data.get("redisUrl"):
            raise ConfigError(
                "Unable to load Prisma config: `sandbox` needs `redisUrl` (every runtime "
                "process shares the services' throttles through Redis)"
            )
    server = ServerConfig(
        name=DEFAULT_SERVER,
        database=database,
        auth=auth,
        limits=limits,
        sandbox=sandbox,
        hosts=_hosts(data.get("hosts", ["*"])),
    )
    return RuntimeConfig(
        port=port,
        servers=(server,),
        redis_url=data.get("redisUrl"),
        operator=_operator(data.get("operator")),
        console_url=_console_url(data.get("consoleUrl")),
        playground_assets=_directory(data.get("playgroundAssets"), "playgroundAssets"),
        api_cache_size=_api_cache_size(data),
        usage=_usage(data.get("usage"), data.get("metrics")),
    )


def _api_cache_size(data: dict[str, Any]) -> int:
    value = _int(data, "apiCacheSize", API_CACHE_SIZE)
    if value < 1:
        raise ConfigError(
            f"Unable to load Prisma config: `apiCacheSize` must be 1 or more, got {value!r}"
        )
    return value


# The config's own server. Registered servers' names never start with `_`, so they never meet.
DEFAULT_SERVER = "_default"
HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*")


def host_name(value: object) -> str | None:
    """A host name (or IPv4 address) as the Host header carries it, lowercased; None if it
    is not one."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower().rstrip(".")
    return name if len(name) <= 253 and HOST_NAME.fullmatch(name) else None


def _hosts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("Unable to load Prisma config: `hosts` must be a non-empty list")
    hosts = []
    for item in value:
        name = "*" if item == "*" else host_name(item)
        if name is None:
            raise ConfigError(f"Unable to load Prisma config: `hosts` has a bad name {item!r}")
        hosts.append(name)
    return tuple(hosts)


def _console_url(value: object) -> str | None:
    """`consoleUrl`: an http(s) origin, optionally with a path, without a query."""
    if value in (None, ""):
        return None
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "Unable to load Prisma config: `consoleUrl` must be an http(s) URL such as "
            "https://console.example.com"
        )
    return str(value).rstrip("/")


def _directory(value: object, key: str) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value))
    if not path.is_dir():
        raise ConfigError(f"Unable to load Prisma config: `{key}` {value!r} is not a directory")
    return path


def _operator(data: object) -> OperatorConfig | None:
    if data in (None, False):
        return None
    if not isinstance(data, dict):
        raise ConfigError("Unable to load Prisma config: `operator` must be a mapping")
    unknown = set(data) - {"publicKey", "encryptionKey", "encryptionKeys", "idleSeconds"}
    if unknown:
        raise ConfigError(
            f"Unable to load Prisma config: unknown `operator` keys {sorted(unknown)}"
        )
    keys = pem_blocks(str(data.get("publicKey") or ""))
    if not keys:
        raise ConfigError("Unable to load Prisma config: `operator.publicKey` must be a PEM key")
    raw = data.get("encryptionKeys") or (
        [data["encryptionKey"]] if data.get("encryptionKey") else []
    )
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            "Unable to load Prisma config: `operator` needs `encryptionKey` (a Fernet key) or "
            "`encryptionKeys` (a list, the first encrypts)"
        )
    from cryptography.fernet import Fernet

    for key in raw:
        try:
            Fernet(str(key))
        except (ValueError, TypeError):
            raise ConfigError(
                "Unable to load Prisma config: `operator.encryptionKey(s)` must be Fernet keys "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    idle = _number(data, "idleSeconds", 300)
    return OperatorConfig(
        public_keys=keys, encryption_keys=tuple(str(k) for k in raw), idle_seconds=idle
    )


def _usage(usage: object, metrics: object) -> UsageConfig:
    """`usage: {enabled, operationsPerMinute, retentionDays}` and `metrics: {enabled, token,
    maxServices}`; unknown keys fail, so a misspelt `token` never leaves `/metrics` open."""
    sections = {
        "usage": {} if usage is None else usage,
        "metrics": {} if metrics is None else metrics,
    }
    allowed = {
        "usage": {"enabled", "operationsPerMinute", "retentionDays"},
        "metrics": {"enabled", "token", "maxServices"},
    }
    for name, section in sections.items():
        if not isinstance(section, dict):
            raise ConfigError(f"Unable to load Prisma config: `{name}` must be a mapping")
        unknown = sorted(set(section) - allowed[name])
        if unknown:
            raise ConfigError(f"Unable to load Prisma config: unknown `{name}` keys {unknown}")
        for key in ("enabled",):
            if key in section and not isinstance(section[key], bool):
                raise ConfigError(f"Unable to load Prisma config: `{name}.{key}` must be a boolean")
    u, m = sections["usage"], sections["metrics"]
    assert isinstance(u, dict) and isinstance(m, dict)
    token = m.get("token")
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise ConfigError(
            "Unable to load Prisma config: `metrics.token` must be a string of 16 characters "
            "or more"
        )
    config = UsageConfig(
        enabled=u.get("enabled", True),
        operations_per_minute=_int(u, "operationsPerMinute", UsageConfig.operations_per_minute),
        retention_days=_number(u, "retentionDays", UsageConfig.retention_days),
        metrics_enabled=m.get("enabled", bool(m)),
        metrics_token=token,
        metrics_services=_int(m, "maxServices", UsageConfig.metrics_services),
    )
    if config.operations_per_minute < 1 or config.metrics_services < 1:
        raise ConfigError(
            "Unable to load Prisma config: `usage.operationsPerMinute` and "
            "`metrics.maxServices` must be at least 1"
        )
    if config.retention_days < 7:
        raise ConfigError("Unable to load Prisma config: `usage.retentionDays` must be 7 or more")
    return config


def _database(name: str, raw: dict[str, Any]) -> DatabaseConfig:
    connector = raw.get("connector")
    if connector not in ("postgres", "postgres-native"):
        raise ConfigError(
            f"Unable to load Prisma config: databases.{name}.connector must be `postgres` "
            f"(got {connector!r}); this server supports PostgreSQL only"
        )
    if raw.get("uri"):
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(str(raw["uri"]))
        raw = {
            "host": parts.get("host"),
            "port": parts.get("port"),
            "user": parts.get("user"),
            "password": parts.get("password"),
            "database": parts.get("dbname"),
            "sslmode": parts.get("sslmode"),
            **{k: v for k, v in raw.items() if k != "uri"},
        }
    limit = _int(raw, "connectionLimit", 10)
    if limit < 2:
        raise ConfigError(f"Unable to load Prisma config: databases.{name}.connectionLimit >= 2")
    return DatabaseConfig(
        host=str(raw.get("host") or "localhost"),
        port=_int(raw, "port", 5432),
        user=str(raw.get("user") or "prisma"),
        password=str(raw.get("password") or ""),
        database=str(raw.get("database") or "prisma"),
        schema=str(raw["schema"]) if raw.get("schema") else None,
        management_schema=str(raw.get("managementSchema") or "management"),
        connection_limit=limit,
        sslmode=_sslmode(name, raw),
    )


def _sslmode(name: str, raw: dict[str, Any]) -> str:
    mode = raw.get("sslmode") or ("require" if raw.get("ssl") else "prefer")
    if mode not in SSL_MODES:
        raise ConfigError(
            f"Unable to load Prisma config: databases.{name}.sslmode must be one of "
            f"{', '.join(SSL_MODES)} (got {mode!r})"
        )
    return str(mode)


def _public_key(value: object) -> str | None:
    if not value:
        return None
    text = str(value).strip()
    if not pem_blocks(text):
        raise ConfigError("Unable to load Prisma config: managementPublicKey must be a PEM key")
    return text


def _number(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if number <= 0:
        raise ConfigError(
            f"Unable to load Prisma config: `{key}` must be a positive number, got {value!r}"
        )
    return number


def _optional_limit(data: dict[str, Any], key: str, default: int | None) -> int | None:
    """A limit that may be off: a positive integer, or 0 (or null) for none."""
    if key not in data:
        return default
    if data[key] is None:
        return None
    value = _int(data, key, 0)
    if value < 0:
        raise ConfigError(
            f"Unable to load Prisma config: `limits.{key}` must be 0 (no limit) or more, "
            f"got {value!r}"
        )
    return value or None


def _int(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Unable to load Prisma config: `{key}` must be an integer, got {value!r}"
        ) from None
