"""Private servers: the user's own PostgreSQL database, served by the platform's runtime.

The console checks the database itself before it stores anything (`test_connection`), then a
worker registers the server on the platform runtime through its operator API (`provision`):
the runtime serves it under the endpoint's host name, with the server's own key pair, and keeps
every service in a schema of the user's database. Removing it from the runtime (`remove`) leaves
that database alone unless the user asked to drop the services' schemas too.

The database password is encrypted at rest (`Server.set_database_password`) and never appears
in a message, a log line or an audit record: connection errors come from libpq, which does not
repeat it, and are scrubbed of it all the same.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import psycopg
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from psycopg.conninfo import conninfo_to_dict

from accounts import audit
from accounts.models import AuditAction, Role, User, Workspace, get_membership
from servers import tokens
from servers.management_api import (
    ManagementError,
    OperatorClient,
    OperatorError,
    PrismaError,
    ServerUnreachable,
)
from servers.models import Server, validate_origin

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DEFAULT_SSL_MODE = "prefer"
# A server's name is the first part of its endpoint's host name (`<name>-<workspace>`), so it is
# a DNS label: lowercase letters, digits and inner hyphens, and the whole label within 63.
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
MAX_LABEL = 63
# How long provisioning waits for every runtime process to know a new server (the operator API
# promises a second or two).
REGISTRY_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class DatabaseParams:
    """Where the user's database is, in libpq's terms."""

    host: str
    port: int
    database: str
    user: str
    password: str = ""
    sslmode: str = DEFAULT_SSL_MODE

    @classmethod
    def from_url(cls, url: str) -> DatabaseParams:
        """`postgresql://user:password@host:5432/db?sslmode=require`, as libpq reads it."""
        if not url.startswith(("postgres://", "postgresql://")):
            raise ValidationError({"url": "Enter a postgresql://user:password@host/db URL."})
        try:
            parts = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise ValidationError({"url": "This URL does not parse as a PostgreSQL URL."}) from None
        try:
            port = int(parts.get("port") or 5432)
        except ValueError:
            raise ValidationError({"url": "The URL's port is not a number."}) from None
        return cls(
            host=str(parts.get("host") or ""),
            port=port,
            database=str(parts.get("dbname") or ""),
            user=str(parts.get("user") or ""),
            password=str(parts.get("password") or ""),
            sslmode=str(parts.get("sslmode") or DEFAULT_SSL_MODE),
        )

    @classmethod
    def of(cls, server: Server) -> DatabaseParams:
        return cls(
            host=server.database_host,
            port=server.database_port or 5432,
            database=server.database_name,
            user=server.database_user,
            password=server.database_password_value,
            sslmode=server.database_sslmode or DEFAULT_SSL_MODE,
        )

    def validate(self) -> None:
        """Field errors for what cannot be a database address. A socket path is refused: the
        runtime and the console would connect to their own machine's sockets, not the user's."""
        errors: dict[str, str] = {}
        if not self.host:
            errors["host"] = "Enter the database's host name or IP address."
        elif self.host.startswith(("/", "@")) or "," in self.host or len(self.host) > 255:
            errors["host"] = "Enter one host name or IP address (no socket path, no list)."
        if not 1 <= self.port <= 65535:
            errors["port"] = "Enter a port between 1 and 65535."
        if not self.database:
            errors["database"] = "Enter the database's name."
        elif len(self.database.encode()) > 63:
            errors["database"] = "A PostgreSQL database name has at most 63 bytes."
        if not self.user:
            errors["user"] = "Enter the user the server connects as."
        elif len(self.user.encode()) > 63:
            errors["user"] = "A PostgreSQL user name has at most 63 bytes."
        if self.sslmode not in SSL_MODES:
            errors["sslmode"] = f"Choose one of {', '.join(SSL_MODES)}."
        if errors:
            raise ValidationError(errors)

    def runtime_entry(self) -> dict[str, object]:
        """The `database` of the operator API's PUT body."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "sslmode": self.sslmode,
        }


@dataclass(frozen=True)
class ConnectionCheck:
    """What `test_connection` found: ok with the server's version, or the reason it is not,
    and the form field the reason is about."""

    ok: bool
    reason: str = ""
    version: str = ""
    field: str = ""


def _scrub(message: str, secret: str) -> str:
    message = " ".join(message.split())
    return message.replace(secret, "********") if secret else message


def _failure(params: DatabaseParams, error: psycopg.Error) -> ConnectionCheck:
    """A person's reason for libpq's connection error (libpq reports these as text only)."""
    raw = _scrub(str(error), params.password)
    text = raw.lower()
    where = f"{params.host}:{params.port}"
    if "password authentication failed" in text or "no password supplied" in text:
        return ConnectionCheck(
            False,
            f"The database refused the user {params.user} with this password.",
            field="password",
        )
    if "does not exist" in text and "database" in text:
        return ConnectionCheck(
            False, f"There is no database named {params.database} on {where}.", field="database"
        )
    if "role" in text and "does not exist" in text:
        return ConnectionCheck(False, f"There is no user named {params.user}.", field="user")
    if "pg_hba.conf" in text:
        if "no encryption" in text or "ssl off" in text:
            return ConnectionCheck(
                False,
                f"{where} accepts this user only over SSL (or not from this platform's address):"
                " choose SSL mode require, or ask its administrator for a pg_hba.conf entry.",
                field="sslmode",
            )
        return ConnectionCheck(
            False,
            f"{where} does not accept this user and database from this platform's address"
            " (no pg_hba.conf entry).",
            field="host",
        )
    if "ssl" in text:
        if "does not support ssl" in text:
            reason = f"{where} does not support SSL, which SSL mode {params.sslmode} requires."
        else:
            reason = f"The SSL connection to {where} failed: {raw}"
        return ConnectionCheck(False, reason, field="sslmode")
    if "failed to resolve host" in text or "could not translate host name" in text:
        return ConnectionCheck(False, f"The host name {params.host} does not resolve.", "", "host")
    if "connection refused" in text:
        return ConnectionCheck(
            False,
            f"Nothing accepts connections at {where} (connection refused): check the host,"
            " the port and that the database allows connections from this platform.",
            field="host",
        )
    if "timeout" in text or "timed out" in text:
        return ConnectionCheck(
            False,
            f"{where} did not answer within {CONNECT_TIMEOUT_SECONDS} s (host unreachable or"
            " behind a firewall).",
            field="host",
        )
    if "no route to host" in text or "network is unreachable" in text:
        return ConnectionCheck(False, f"{where} is unreachable from this platform.", field="host")
    return ConnectionCheck(False, f"The connection to {where} failed: {raw}", field="host")


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return {host}


def is_denied(host: str, port: int) -> bool:
    """Whether the address is one of PRIVATE_DATABASE_DENY's database servers (the console's
    own by default), by the addresses both names resolve to."""
    addresses = None
    for entry in settings.PRIVATE_DATABASE_DENY:
        denied_host, _, denied_port = entry.rpartition(":")
        if not denied_host or denied_host.startswith("/") or denied_port != str(port):
            continue  # a socket path is refused anyway (`validate`)
        addresses = addresses if addresses is not None else _addresses(host)
        if addresses & _addresses(denied_host):
            return True
    return False


def test_connection(params: DatabaseParams) -> ConnectionCheck:
    """Really connect, as the runtime will, and check the user may create schemas (one per
    service). Within CONNECT_TIMEOUT_SECONDS; never raises for a database's answer."""
    try:
        params.validate()
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        return ConnectionCheck(False, messages[0], field=field)
    if is_denied(params.host, params.port):
        return ConnectionCheck(
            False,
            "That is this platform's own database server, which cannot hold private servers:"
            " use a PostgreSQL server of your own.",
            field="host",
        )
    try:
        with psycopg.connect(
            host=params.host,
            port=params.port,
            dbname=params.database,
            user=params.user,
            password=params.password or None,
            sslmode=params.sslmode,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="refract-console",
            autocommit=True,
        ) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            may_create, superuser = conn.execute(
                "SELECT has_database_privilege(current_user, current_database(), 'CREATE'),"
                " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)"
            ).fetchone()  # type: ignore[misc]
    except psycopg.Error as error:
        return _failure(params, error)
    except OSError as error:  # a resolver or socket error psycopg did not wrap
        return _failure(params, psycopg.OperationalError(str(error)))
    if superuser:
        # The platform's runtime would hold a superuser's connection on the tenant's behalf:
        # everything on that PostgreSQL server, other databases included, within its reach.
        return ConnectionCheck(
            False,
            f"{params.user} is a superuser of that PostgreSQL server: give Refract a role of"
            f" its own, which owns {params.database} or may create schemas in it (CREATE ROLE"
            f" refract LOGIN PASSWORD '...'; GRANT CREATE ON DATABASE \"{params.database}\""
            " TO refract).",
            version=version,
            field="user",
        )
    if not may_create:
        return ConnectionCheck(
            False,
            f"The user {params.user} may not create schemas in {params.database}, and each"
            f" service lives in a schema of its own: GRANT CREATE ON DATABASE"
            f' "{params.database}" TO "{params.user}".',
            version=version,
            field="user",
        )
    return ConnectionCheck(True, version=version)


test_connection.__test__ = False  # type: ignore[attr-defined] # not a test for pytest


def endpoint_for(name: str, workspace: Workspace) -> str:
    """The server's public endpoint: PRIVATE_SERVER_ENDPOINT with `{server}` as
    `<name>-<workspace>` (a template without it serves one private server in all)."""
    return settings.PRIVATE_SERVER_ENDPOINT.replace("{server}", f"{name}-{workspace.slug}")


def offered() -> bool:
    """Whether this platform has a runtime to serve private servers on."""
    return bool(settings.PRIVATE_SERVER_RUNTIME)


def _validate_name(name: str, workspace: Workspace) -> None:
    budget = min(Server._meta.get_field("name").max_length, MAX_LABEL - 1 - len(workspace.slug))
    if not name:
        raise ValidationError({"name": "Enter a name for the server."})
    if not NAME_RE.match(name):
        raise ValidationError(
            {"name": "Use lowercase letters, digits and hyphens (not at the ends): the name is"
             " part of the server's host name."}
        )  # fmt: skip
    if len(name) > budget:
        raise ValidationError({"name": f"In this workspace a server's name has at most {budget}"
                               " characters (its host name has 63 at most)."})  # fmt: skip


def create_private_server(
    user: User,
    workspace: Workspace,
    name: str,
    params: DatabaseParams,
    *,
    request: HttpRequest | None = None,
) -> Server:
    """A private server on the user's database (admins and owners), provisioned by a worker.

    The database is checked first, outside any transaction (it may take seconds): when it
    does not answer as it must, nothing is stored and the error names the field to fix.
    """
    membership = get_membership(user, workspace.slug)  # 404 for non-members
    if not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can create servers.")
    if not offered():
        raise ValidationError(
            "This platform runs no runtime for private servers (PRIVATE_SERVER_RUNTIME is not set)."
        )
    tokens.platform_private_key()  # a clear configuration error now, not a failed task later
    _validate_name(name, workspace)
    endpoint = endpoint_for(name, workspace)
    try:
        validate_origin(endpoint)
    except ValidationError:
        raise ValidationError(
            f"PRIVATE_SERVER_ENDPOINT makes {endpoint!r} for this server, which is not an origin."
        ) from None
    server = Server(
        workspace=workspace,
        kind=Server.Kind.PRIVATE,
        name=name,
        endpoint=endpoint,
        created_by=user,
        database_host=params.host,
        database_port=params.port,
        database_name=params.database,
        database_user=params.user,
        database_sslmode=params.sslmode,
    )
    server.clean()  # the Prisma CLI's sandbox names
    params.validate()
    _check_free(server)
    check = test_connection(params)
    if not check.ok:
        raise ValidationError({check.field or "host": check.reason})
    key_pair = tokens.generate_key_pair()
    server.public_key_pem = key_pair.public_pem
    server.set_private_key(key_pair.private_pem)
    server.set_database_password(params.password)
    with transaction.atomic():
        _check_free(server)
        try:
            with transaction.atomic():
                server.save()
        except IntegrityError:  # a concurrent request took the name or the endpoint
            _check_free(server)
            raise ValidationError({"name": "This name was just taken: choose another."}) from None
        audit.record(
            AuditAction.SERVER_CREATED,
            request=request,
            actor=user,
            workspace=workspace,
            server=str(server.id),
            name=server.name,
            kind=server.kind,
            endpoint=server.endpoint,
            database=f"{params.user}@{params.host}:{params.port}/{params.database}",
        )
        from servers.services import _enqueue_provisioning

        _enqueue_provisioning(server)
    return server


@transaction.atomic
def provision_again(user: User, server: Server) -> Server:
    """Queue provisioning of a failed private server again (admins and owners): the user fixed
    the database or the platform its runtime."""
    membership = get_membership(user, server.workspace.slug)
    if not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can provision servers.")
    server = Server.objects.select_for_update().select_related("workspace").get(id=server.id)
    if server.kind != Server.Kind.PRIVATE or server.status != Server.Status.FAILED:
        raise ValidationError("Only a failed private server is provisioned again.")
    from servers.services import _enqueue_provisioning, _move

    _move(server, Server.Status.PROVISIONING, "provisioning again", actor=user)
    Server.objects.filter(id=server.id).update(claim_id=None, heartbeat_at=None, attempts=0)
    _enqueue_provisioning(server)
    return server


def _check_free(server: Server) -> None:
    if Server.objects.filter(workspace=server.workspace, name=server.name).exists():
        raise ValidationError({"name": "This workspace already has a server with this name."})
    if Server.objects.filter(kind=Server.Kind.PRIVATE, endpoint=server.endpoint).exists():
        raise ValidationError(
            {"name": f"The endpoint {server.endpoint} is taken by another private server."}
        )


def operator() -> OperatorClient:
    """The platform runtime's operator API, with a fresh operator token."""
    return OperatorClient(settings.PRIVATE_SERVER_RUNTIME, tokens.operator_token())


def _hostname(server: Server) -> str:
    return urlsplit(server.endpoint).hostname or ""


def public(message: object, server: Server) -> str:
    """A management error as its server's owner may read it: the platform runtime's internal
    address (which the management client names) is replaced by the server's endpoint."""
    text = str(message)
    runtime = settings.PRIVATE_SERVER_RUNTIME
    return text.replace(runtime, server.endpoint) if runtime else text


def _operator_failure(error: ManagementError) -> ManagementError:
    if isinstance(error, ServerUnreachable):
        # The operator API's address is the platform's business: logged, not shown.
        log.warning("the platform runtime's operator API failed: %s", error)
        text = str(error)
        if "cannot connect" in text:
            cause = text.rsplit(": ", 1)[-1]
        elif "did not answer within" in text:
            cause = "no answer in time"
        else:
            cause = "it does not answer as an operator API"
        return ManagementError(f"the platform runtime cannot be reached ({cause})")
    if isinstance(error, OperatorError):
        if error.status == 404:
            log.warning("the platform runtime has no operator API: %s", error)
            return ManagementError(
                "the platform runtime has no operator API (its config has no `operator` block)"
            )
        if error.status == 401:
            return ManagementError(
                f"the platform runtime refused the console's operator token ({error}): its"
                " operator publicKey must be the platform's public key"
            )
        if error.status == 409:
            return ManagementError(
                f"the platform runtime already serves another server on this host name: {error}"
            )
        if error.status == 400:
            field = f" ({error.field})" if error.field else ""
            return ManagementError(f"the platform runtime refused the server's settings{field}:"
                                   f" {error}")  # fmt: skip
        return ManagementError(f"the platform runtime's operator API said: {error}")
    return error


def provision(server: Server) -> str:
    """Register the server on the platform runtime (its database, its host name, its public
    key), then ask it, under that host name, who it is and, with the server's own token, for
    its services: the runtime answering both means it reaches the user's database. Returns
    the version; raises ManagementError with a reason a person can act on."""
    if not offered():
        raise ManagementError("no platform runtime serves private servers (PRIVATE_SERVER_RUNTIME)")
    params = DatabaseParams.of(server)
    try:
        operator().put_server(
            server.runtime_name,
            hosts=[_hostname(server)],
            database=params.runtime_entry(),
            management_public_key=server.public_key_pem,
        )
    except ManagementError as error:
        raise _operator_failure(error) from None
    if not Server.objects.filter(id=server.id, status=Server.Status.PROVISIONING).exists():
        # Deleted while this run registered it: take it off the runtime again.
        _unregister(server)
        raise ManagementError("the server was deleted while it was being provisioned")
    info = _server_info(server)
    client = server.management_client(tokens.server_token(server))
    try:
        client.list_projects()
    except PrismaError as error:
        raise ManagementError(
            f"the platform runtime cannot use the database: {public(error, server)}"
        ) from None
    except ServerUnreachable as error:
        raise ManagementError(
            f"the server does not answer on the platform runtime: {public(error, server)}"
        ) from None
    return str(info.get("version") or "")


def _server_info(server: Server) -> dict[str, object]:
    """serverInfo under the server's host name; a runtime process that has not seen the new
    entry yet answers "Unknown host" for a moment, so that is asked again briefly."""
    deadline = time.monotonic() + REGISTRY_WAIT_SECONDS
    while True:
        try:
            return server.management_client().server_info()
        except PrismaError as error:
            if "unknown host" not in str(error).lower() or time.monotonic() > deadline:
                raise ManagementError(
                    f"the server's serverInfo failed: {public(error, server)}"
                ) from None
        except ServerUnreachable as error:
            if time.monotonic() > deadline:
                raise ManagementError(
                    f"the server does not answer on the platform runtime: {public(error, server)}"
                ) from None
        time.sleep(0.2)


def _unregister(server: Server) -> bool:
    """Take the server off the platform runtime; False when it was not there."""
    try:
        return operator().delete_server(server.runtime_name)
    except ManagementError as error:
        raise _operator_failure(error) from None


def remove(server: Server, *, drop_schemas: bool) -> list[str]:
    """Take a private server off the platform runtime; with `drop_schemas`, first delete every
    service's project through its management API, which drops its schema in the user's
    database. Returns the `name/stage` of the projects deleted. Idempotent: a server the
    runtime no longer has is already removed."""
    if not offered():
        return []
    dropped: list[str] = []
    if drop_schemas:
        dropped = _drop_projects(server)
    _unregister(server)
    return dropped


def _drop_projects(server: Server) -> list[str]:
    client = server.management_client(tokens.server_token(server))
    try:
        projects = client.list_projects()
    except PrismaError as error:
        if "unknown host" in str(error).lower():
            return []  # not on the runtime (never provisioned, or removed by a previous run)
        raise ManagementError(
            f"listing the server's services failed: {public(error, server)}"
        ) from None
    except ServerUnreachable as error:
        raise _operator_failure(error) from None
    dropped = []
    for project in projects:
        name, stage = str(project["name"]), str(project["stage"])
        try:
            client.delete_project(name, stage)
        except PrismaError as error:
            if error.code != 4000:  # 4000: no such project (deleted meanwhile)
                raise ManagementError(f"deleting {name}/{stage} failed: {error}") from None
        dropped.append(f"{name}/{stage}")
    return dropped
