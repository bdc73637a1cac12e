"""Typed helpers that read settings from the environment and fail loudly on bad values."""

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "ImproperlyConfigured",
    "database_from_url",
    "env_bool",
    "env_int",
    "env_list",
    "env_origins",
    "env_secret",
    "env_str",
]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if not value >= 0:
        raise ImproperlyConfigured(f"{name} must be zero or more, not {raw!r}")
    return value


def env_floats(name: str, default: list[float]) -> list[float]:
    """Comma-separated non-negative numbers (`1,2,4`); an empty value is an empty list."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    values = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            value = float(item)
        except ValueError:
            raise ImproperlyConfigured(f"{name} must be numbers separated by commas") from None
        if not value >= 0:
            raise ImproperlyConfigured(f"{name}: {item} is negative")
        values.append(value)
    return values


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_origins(name: str) -> dict[str, str]:
    """`name=origin` pairs separated by commas (`eu1=https://eu1.example.com`), each origin a
    bare `http(s)://host[:port]` without path, query or credentials."""
    origins: dict[str, str] = {}
    for item in env_list(name, []):
        key, _, origin = item.partition("=")
        key, origin = key.strip(), origin.strip().rstrip("/")
        parts = urlsplit(origin)
        if not key or not key.replace("-", "").isalnum() or key != key.lower():
            raise ImproperlyConfigured(f"{name}: {key!r} is not a lower-case name (a-z, 0-9, -)")
        if (
            parts.scheme not in {"http", "https"}
            or not parts.hostname
            or parts.path
            or parts.query
            or parts.fragment
            or parts.username
        ):
            raise ImproperlyConfigured(
                f"{name}: {origin!r} is not an origin like https://host:port"
            )
        if key in origins:
            raise ImproperlyConfigured(f"{name}: {key!r} appears twice")
        origins[key] = origin
    return origins


def env_secret(name: str, default: str | None) -> str:
    """A secret from `NAME` or from the file named by `NAME_FILE` (Docker and k8s secrets)."""
    value = os.environ.get(name)
    file_name = os.environ.get(f"{name}_FILE")
    if value and file_name:
        raise ImproperlyConfigured(f"set {name} or {name}_FILE, not both")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE: cannot read {file_name}: {exc}") from None
    if value:
        return value
    if default is None:
        raise ImproperlyConfigured(
            f"{name} is not set. `make run` and `make test` start an embedded server when it is"
            " unset; elsewhere set it explicitly."
        )
    return default


def database_from_url(url: str) -> dict:
    """Django's database settings from `postgres://user:password@host:port/name?options`.

    A `host` query parameter names a Unix socket directory, as libpq allows.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a postgres:// URL (Refract runs on PostgreSQL only), not {url!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured("DATABASE_URL must name a database")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    host = options.pop("host", None) or unquote(parts.hostname or "")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL has a bad port: {url!r}") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
        "TEST": {"NAME": f"test_{name}"},
    }
