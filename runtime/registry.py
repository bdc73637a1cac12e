"""The registry of servers added at run time (private servers), kept in the runtime's own
management database (the default server's `management` schema), so every runtime process sees
the same servers and they survive restarts.

One row per server in `"OperatorServer"`: its public entry (JSON: host names, database address,
management public key, limits) and its secrets (the database password and the optional
management API secret) encrypted with the operator's Fernet keys (`MultiFernet`: the first
encrypts, any decrypts, so keys can rotate). `"OperatorRegistry"` holds one version number that
every change bumps in the same transaction: runtime processes poll it each second and reload the
rows when it moves. The version row is also the lock that keeps two writers from giving one
host name to two servers.

Entries are validated here, once, for the operator API and for rows read back (`parse_entry`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from psycopg import Connection, sql
from psycopg.conninfo import conninfo_to_dict

from runtime.config import (
    SSL_MODES,
    AuthConfig,
    DatabaseConfig,
    Limits,
    ServerConfig,
    host_name,
    pem_blocks,
)

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ENTRY_KEYS = frozenset(
    {"hosts", "database", "managementPublicKey", "managementApiSecret", "limits"}
)
DATABASE_KEYS = frozenset(
    {"uri", "host", "port", "user", "password", "database", "sslmode", "connectionLimit"}
)
# The config's `limits` keys (`runtime.config.Limits`).
LIMIT_KEYS = {
    "datamodelBytes": "datamodel_bytes",
    "datamodelTypes": "datamodel_types",
    "requestBytes": "request_bytes",
    "statementTimeoutMs": "statement_timeout_ms",
    "responseBytes": "response_bytes",
}
OPTIONAL_LIMITS = frozenset({"statementTimeoutMs", "responseBytes"})  # 0 or null: no limit
# A registered server's default `connectionLimit`: one thread connection, three for the loop.
CONNECTION_LIMIT = 4
MAX_CONNECTION_LIMIT = 100


class EntryError(ValueError):
    """Bad input for a registered server: HTTP `status` with `field` naming the culprit."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"error": self.message}
        if self.field:
            answer["field"] = self.field
        return answer


@dataclass(frozen=True)
class Registered:
    """A registered server as read from the registry: its tenant config and its public entry."""

    config: ServerConfig
    entry: dict[str, Any]  # as the operator API shows it: no password, no secret

    @property
    def stamp(self) -> str:
        """Changes whenever the server is replaced (its pools are then reopened)."""
        return str(self.entry["updatedAt"])


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise EntryError(
            "a server name is 1 to 63 lowercase letters, digits and dashes, starting with a "
            "letter or digit",
            "name",
        )


def parse_entry(name: str, body: Any) -> tuple[ServerConfig, dict[str, Any], dict[str, str]]:
    """Validate an operator entry: (its tenant config, its public entry, its secrets)."""
    check_name(name)
    if not isinstance(body, dict):
        raise EntryError("the body must be a JSON object")
    unknown = sorted(set(body) - ENTRY_KEYS)
    if unknown:
        raise EntryError(f"unknown key {unknown[0]!r}", unknown[0])
    hosts = _hosts(body.get("hosts"))
    database, password = _database(body.get("database"))
    public_key = _public_key(body.get("managementPublicKey"))
    secret = body.get("managementApiSecret")
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise EntryError("managementApiSecret must be a non-empty string", "managementApiSecret")
    if public_key is None and not secret:
        raise EntryError(
            "a server's management API needs managementPublicKey (PEM) or managementApiSecret",
            "managementPublicKey",
        )
    limits, limits_entry = _limits(body.get("limits"))
    config = ServerConfig(
        name=name,
        database=DatabaseConfig(**{**database, "password": password}),
        auth=AuthConfig(management_secret=secret or None, management_public_key=public_key),
        limits=limits,
        sandbox=None,  # registered servers are never sandboxes
        hosts=hosts,
    )
    entry = {
        "name": name,
        "hosts": list(hosts),
        "database": {
            "host": database["host"],
            "port": database["port"],
            "user": database["user"],
            "database": database["database"],
            "sslmode": database["sslmode"],
            "connectionLimit": database["connection_limit"],
        },
        "managementPublicKey": public_key,
        "limits": limits_entry,
    }
    secrets = {"password": password}
    if secret:
        secrets["managementApiSecret"] = secret
    return config, entry, secrets


def _hosts(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise EntryError("hosts must be a non-empty list of host names", "hosts")
    hosts: list[str] = []
    for item in value:
        name = host_name(item)
        if name is None:
            raise EntryError(f"{item!r} is not a host name", "hosts")
        if name not in hosts:
            hosts.append(name)
    return tuple(hosts)


def _database(value: Any) -> tuple[dict[str, Any], str]:
    """The database's DatabaseConfig fields (without the password) and its password."""
    if not isinstance(value, dict):
        raise EntryError("database must be an object (uri, or host, port, user, ...)", "database")
    unknown = sorted(set(value) - DATABASE_KEYS)
    if unknown:
        raise EntryError(f"unknown key {unknown[0]!r}", f"database.{unknown[0]}")
    raw = dict(value)
    if "uri" in raw:
        others = sorted(set(raw) - {"uri", "connectionLimit"})
        if others:
            raise EntryError(
                "database takes either `uri` or its parts (host, port, ...), not both",
                f"database.{others[0]}",
            )
        uri = raw.pop("uri")
        if not isinstance(uri, str) or not uri.startswith(("postgres://", "postgresql://")):
            raise EntryError("database.uri must be a postgresql:// URI", "database.uri")
        try:
            parts = conninfo_to_dict(uri)
        except Exception as exc:  # psycopg.ProgrammingError: a malformed URI
            raise EntryError(f"database.uri does not parse: {exc}", "database.uri") from None
        raw.update(
            {
                "host": parts.get("host"),
                "port": int(parts["port"]) if str(parts.get("port", "")).isdigit() else None,
                "user": parts.get("user"),
                "password": parts.get("password"),
                "database": parts.get("dbname"),
                "sslmode": parts.get("sslmode"),
            }
        )
        if parts.get("port") and raw["port"] is None:
            raise EntryError("database.uri has a bad port", "database.uri")
        where = "database.uri"
    else:
        where = "database"
    for key in ("host", "user", "database"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            field = where if where == "database.uri" else f"database.{key}"
            raise EntryError(f"database needs `{key}`", field)
    port = raw.get("port") if raw.get("port") is not None else 5432
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise EntryError("database.port must be a port number", "database.port")
    password = raw.get("password") or ""
    if not isinstance(password, str):
        raise EntryError("database.password must be a string", "database.password")
    sslmode = raw.get("sslmode") or "prefer"
    if sslmode not in SSL_MODES:
        raise EntryError(
            f"database.sslmode must be one of {', '.join(SSL_MODES)} (got {sslmode!r})",
            "database.sslmode",
        )
    limit = raw.get("connectionLimit", CONNECTION_LIMIT)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 2 <= limit <= MAX_CONNECTION_LIMIT
    ):
        raise EntryError(
            f"database.connectionLimit must be an integer from 2 to {MAX_CONNECTION_LIMIT}",
            "database.connectionLimit",
        )
    fields = {
        "host": raw["host"],
        "port": port,
        "user": raw["user"],
        "database": raw["database"],
        "sslmode": sslmode,
        "connection_limit": limit,
    }
    return fields, password


def _public_key(value: Any) -> str | None:
    if value is None:
        return None
    blocks = pem_blocks(value) if isinstance(value, str) else ()
    if not blocks:
        raise EntryError(
            "managementPublicKey must hold one or more PEM public keys", "managementPublicKey"
        )
    for block in blocks:
        try:
            serialization.load_pem_public_key(block.encode())
        except (ValueError, TypeError) as exc:
            raise EntryError(
                f"managementPublicKey holds a PEM block that is not a public key: {exc}",
                "managementPublicKey",
            ) from None
    return "\n".join(blocks) + "\n"


def _limits(value: Any) -> tuple[Limits, dict[str, Any]]:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise EntryError("limits must be an object", "limits")
    fields: dict[str, int | None] = {}
    for key, item in value.items():
        if key not in LIMIT_KEYS:
            raise EntryError(f"unknown key {key!r}", f"limits.{key}")
        if item is None and key in OPTIONAL_LIMITS:
            fields[LIMIT_KEYS[key]] = None
            continue
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise EntryError(f"limits.{key} must be a non-negative integer", f"limits.{key}")
        if item == 0 and key not in OPTIONAL_LIMITS:
            raise EntryError(f"limits.{key} must be positive", f"limits.{key}")
        fields[LIMIT_KEYS[key]] = item or None
    return Limits(**fields), dict(value)


# Storage ----------------------------------------------------------------------------------


def fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def ensure_tables(conn: Connection, schema: str) -> None:
    s = sql.Identifier(schema).as_string(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(1000)")  # the lock `store.ensure_schema` takes
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {s}."OperatorServer" ('
            '"name" varchar(63) PRIMARY KEY, "entry" jsonb NOT NULL, "secrets" text NOT NULL, '
            '"createdAt" timestamptz NOT NULL, "updatedAt" timestamptz NOT NULL)'
        )
        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {s}."OperatorRegistry" ('
            '"id" integer PRIMARY KEY CHECK ("id" = 1), "version" bigint NOT NULL)'
        )
        conn.execute(
            f'INSERT INTO {s}."OperatorRegistry" VALUES (1, 0) ON CONFLICT ("id") DO NOTHING'  # noqa: S608 - a quoted identifier
        )


def _q(query: str, schema: str) -> sql.Composed:
    return sql.SQL(query).format(s=sql.Identifier(schema))


def version_query(schema: str) -> sql.Composed:
    return _q('SELECT "version" FROM {s}."OperatorRegistry"', schema)


def version(conn: Connection, schema: str) -> int:
    row = conn.execute(version_query(schema)).fetchone()
    return int(row[0]) if row else 0


def load(
    conn: Connection, schema: str, keys: MultiFernet
) -> tuple[int, list[Registered], list[tuple[str, str]]]:
    """The registry's version, every server it holds, and (name, reason) for the rows that
    cannot be read back (secrets that no configured key decrypts): those are left out."""
    with conn.transaction():
        current = version(conn, schema)
        rows = conn.execute(
            _q(
                'SELECT "name", "entry", "secrets", "createdAt", "updatedAt" '
                'FROM {s}."OperatorServer" ORDER BY "name"',
                schema,
            )
        ).fetchall()
    servers = []
    unreadable = []
    for name, entry, secrets, created, updated in rows:
        try:
            secrets_json = keys.decrypt(secrets.encode())
            servers.append(_registered(name, entry, secrets_json, created, updated))
        except InvalidToken:
            unreadable.append((name, "no configured encryption key decrypts its secrets"))
        except (EntryError, ValueError) as exc:
            unreadable.append((name, str(exc)))
    return current, servers, unreadable


def _registered(
    name: str, stored: dict[str, Any], secrets_json: bytes, created: datetime, updated: datetime
) -> Registered:
    secrets = json.loads(secrets_json)
    database = {k: v for k, v in stored["database"].items()}
    database["password"] = secrets.get("password", "")
    body = {
        "hosts": stored["hosts"],
        "database": database,
        "limits": stored.get("limits") or {},
    }
    if stored.get("managementPublicKey"):
        body["managementPublicKey"] = stored["managementPublicKey"]
    if secrets.get("managementApiSecret"):
        body["managementApiSecret"] = secrets["managementApiSecret"]
    config, entry, _ = parse_entry(name, body)
    entry["createdAt"] = _timestamp(created)
    entry["updatedAt"] = _timestamp(updated)
    return Registered(config, entry)


def _timestamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


def put(
    conn: Connection,
    schema: str,
    keys: MultiFernet,
    name: str,
    body: Any,
    reserved_hosts: tuple[str, ...],
) -> tuple[Registered, bool]:
    """Create or replace a server; (it, whether it is new). `EntryError` for bad input, 409 for
    a host name another server (or the config's own server, `reserved_hosts`) answers on.

    Putting a server exactly as it is changes nothing (its `updatedAt` stays, its open
    connections too), so a platform may reconcile by putting every server again."""
    config, entry, secrets = parse_entry(name, body)
    for host in config.hosts:
        if host in reserved_hosts:
            raise EntryError(f"the runtime's own server answers on {host}", "hosts", 409)
    stored = {k: v for k, v in entry.items() if k != "name"}
    with conn.transaction():
        # The version row serialises writers: host checks see every committed server.
        conn.execute(_q('SELECT 1 FROM {s}."OperatorRegistry" FOR UPDATE', schema))
        taken = conn.execute(
            _q(
                'SELECT "name", host FROM {s}."OperatorServer", '
                "jsonb_array_elements_text(\"entry\"->'hosts') AS host "
                'WHERE "name" <> %s AND host = ANY(%s)',
                schema,
            ),
            [name, list(config.hosts)],
        ).fetchone()
        if taken is not None:
            raise EntryError(f"the server {taken[0]} already answers on {taken[1]}", "hosts", 409)
        current = conn.execute(
            _q(
                'SELECT "entry", "secrets", "createdAt", "updatedAt" FROM {s}."OperatorServer" '
                'WHERE "name" = %s',
                schema,
            ),
            [name],
        ).fetchone()
        if current is not None and current[0] == stored and _secrets(keys, current[1]) == secrets:
            created, updated, inserted = current[2], current[3], False
        else:
            encrypted = keys.encrypt(json.dumps(secrets).encode()).decode()
            created, updated, inserted = conn.execute(
                _q(
                    'INSERT INTO {s}."OperatorServer" '
                    '("name", "entry", "secrets", "createdAt", "updatedAt") '
                    # One timestamp for both columns (two clock_timestamp() calls differ).
                    "VALUES (%s, %s, %s, statement_timestamp(), statement_timestamp()) "
                    'ON CONFLICT ("name") DO UPDATE SET "entry" = EXCLUDED."entry", '
                    '"secrets" = EXCLUDED."secrets", "updatedAt" = statement_timestamp() '
                    'RETURNING "createdAt", "updatedAt", (xmax = 0)',
                    schema,
                ),
                [name, json.dumps(stored), encrypted],
            ).fetchone()
            conn.execute(_q('UPDATE {s}."OperatorRegistry" SET "version" = "version" + 1', schema))
    entry["createdAt"] = _timestamp(created)
    entry["updatedAt"] = _timestamp(updated)
    return Registered(config, entry), bool(inserted)


def _secrets(keys: MultiFernet, encrypted: str) -> dict[str, str] | None:
    try:
        return json.loads(keys.decrypt(encrypted.encode()))
    except InvalidToken:
        return None


def delete(conn: Connection, schema: str, name: str) -> bool:
    with conn.transaction():
        gone = conn.execute(
            _q('DELETE FROM {s}."OperatorServer" WHERE "name" = %s', schema), [name]
        ).rowcount
        if gone:
            conn.execute(_q('UPDATE {s}."OperatorRegistry" SET "version" = "version" + 1', schema))
    return bool(gone)
