"""Self-hosted servers: a Prisma server the user runs, connected to the console by its endpoint.

The console generates an RSA key pair for it (the private half encrypted at rest) and shows the
public half with the exact configuration to paste into the server; or it takes the server's
existing management API secret (HS256, as the Prisma CLI signs). Connecting creates the row in
`provisioning` and queues the check at once (`services.run_provisioning` calls `check`). With a
new key pair that first check usually fails with "key not installed", which is what the page
then asks for: paste the configuration, restart the server, "Check connection" (`request_check`).

A server whose management API answers without any token is refused: anyone who can reach it,
another workspace registering the same endpoint included, could deploy to it or delete its
services, which the console cannot keep apart (DESIGN invariant 7).

Rotating the key pair (`start_rotation`, `confirm_rotation`, `cancel_rotation`): the next pair
waits in `next_*` while the current one keeps signing; the page shows the configuration with
both public keys (our runtime accepts several PEM blocks in `managementPublicKey`), and only a
listing the server accepts signed with the new key switches the console to it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction, Role, User, Workspace, get_membership
from cloud import crypto
from servers import runs, tokens
from servers.management_api import (
    ManagementError,
    NotManagementApi,
    PrismaError,
    ServerUnreachable,
)
from servers.models import Server, Service
from servers.services import _enqueue_provisioning, _move

log = logging.getLogger(__name__)

INVALID_TOKEN = 3015  # Prisma's "Authentication token is invalid"
EXPIRED_TOKEN = 3016  # "Authentication token is expired"
DEFAULT_PORT = 4466
# What the configuration snippets show for the server's database: Prisma's own docker-compose
# example. The user keeps whatever their server already has; only the key is new.
EXAMPLE_DATABASE = {
    "connector": "postgres",
    "host": "postgres",
    "port": 5432,
    "user": "prisma",
    "password": "prisma",
    "database": "prisma",
}
MIN_SECRET_LENGTH = 8
IMPORT_HISTORY_SECONDS = 30


# --- connecting -------------------------------------------------------------------------------


def _require_admin(user: User, workspace: Workspace) -> None:
    membership = get_membership(user, workspace.slug)  # 404 for non-members
    if not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can connect and manage servers.")


def normalize_endpoint(value: str) -> str:
    """What people paste: surrounding spaces and a trailing slash are not part of the origin."""
    value = (value or "").strip()
    return value[:-1] if value.endswith("/") and value.count("/") == 3 else value


def connect_server(
    user: User,
    workspace: Workspace,
    name: str,
    endpoint: str,
    *,
    secret: str | None = None,
    request: HttpRequest | None = None,
) -> Server:
    """Register a server the user runs (admins and owners) and queue its first check.

    Without `secret` the console generates the server's key pair; the page then shows the
    public key to install. With `secret` the console signs HS256 tokens with it. Raises
    ValidationError with field errors (`name`, `endpoint`, `secret`)."""
    _require_admin(user, workspace)
    name, endpoint = (name or "").strip(), normalize_endpoint(endpoint)
    secret = (secret or "").strip() or None
    if secret is not None and len(secret) < MIN_SECRET_LENGTH:
        raise ValidationError(
            {"secret": f"A management API secret has at least {MIN_SECRET_LENGTH} characters."}
        )
    server = Server(
        workspace=workspace,
        kind=Server.Kind.SELF_HOSTED,
        name=name,
        endpoint=endpoint,
        status=Server.Status.PROVISIONING,
        created_by=user,
    )
    errors: dict[str, list[str]] = {}
    try:
        server.full_clean(exclude=["workspace"], validate_constraints=False)
    except ValidationError as error:
        errors = {field: list(messages) for field, messages in error.message_dict.items()}
    if name and "name" not in errors and workspace.servers.filter(name=name).exists():
        errors["name"] = [f"This workspace already has a server named {name}."]
    if "endpoint" not in errors:
        twin = workspace.servers.filter(kind=Server.Kind.SELF_HOSTED, endpoint=endpoint).first()
        if twin is not None:
            errors["endpoint"] = [f"This workspace already connected {endpoint} as {twin.name}."]
    if errors:
        raise ValidationError(errors)
    if secret is None:
        key_pair = tokens.generate_key_pair()
        server.public_key_pem = key_pair.public_pem
        server.set_private_key(key_pair.private_pem)
    else:
        server.set_management_secret(secret)
    try:
        with transaction.atomic():
            server.save()
            audit.record(
                AuditAction.SERVER_CREATED,
                request=request,
                actor=user,
                workspace=workspace,
                server=str(server.id),
                name=server.name,
                kind=server.kind,
                endpoint=endpoint,
                credentials="secret" if secret else "key pair",
            )
            _enqueue_provisioning(server)
    except IntegrityError:  # a twin created meanwhile
        raise ValidationError(
            {"name": [f"This workspace already has a server named {name}."]}
        ) from None
    return server


@transaction.atomic
def request_check(user: User, server: Server, *, request: HttpRequest | None = None) -> bool:
    """The "Check connection" button: a failed server is checked again (in a worker). Returns
    False when there is nothing to do (a check is already queued, or the server is connected)."""
    _require_admin(user, server.workspace)
    if server.kind != Server.Kind.SELF_HOSTED:
        raise ValidationError("Only self-hosted servers are checked this way.")
    server = Server.objects.select_for_update().select_related("workspace").get(id=server.id)
    if server.status != Server.Status.FAILED:
        return False
    if not _move(server, Server.Status.PROVISIONING, "checking the connection again", actor=user):
        return False
    Server.objects.filter(id=server.id).update(claim_id=None, heartbeat_at=None, attempts=0)
    _enqueue_provisioning(server)
    return True


# --- the check ----------------------------------------------------------------------------------


def check(server: Server) -> str:
    """The provisioning check of a self-hosted server (`services.run_provisioning`): its public
    `serverInfo`, then a `listProjects` with a `*/*` token the server must accept, then that the
    server refuses the same call without a token. Imports the services already on it.

    Returns the server's version; raises ManagementError whose message starts with what is
    wrong in words a person acts on: unreachable, not a Prisma server, key not installed,
    wrong secret, management API open."""
    version = _server_info(server)
    client = server.management_client(tokens.server_token(server))
    try:
        client.list_projects()
    except PrismaError as error:
        raise ManagementError(_refusal(server, error)) from None
    except ServerUnreachable as error:
        raise ManagementError(_unreachable(server, error)) from None
    _refuse_open(server)
    _import_services(server)
    return version


def _server_info(server: Server) -> str:
    try:
        info = server.management_client().server_info()
    except (NotManagementApi, PrismaError) as error:
        raise ManagementError(
            f"Not a Prisma server: {server.endpoint} answers, but not as a Prisma management"
            f" API ({error}). The endpoint is the server's origin, such as"
            f" http://prisma.example.com:{DEFAULT_PORT}, without a path."
        ) from None
    except ServerUnreachable as error:
        raise ManagementError(_unreachable(server, error)) from None
    if not isinstance(info, dict) or not info.get("version"):
        raise ManagementError(
            f"Not a Prisma server: {server.endpoint}/management answered serverInfo without a"
            " version."
        )
    return str(info["version"])


def _unreachable(server: Server, error: ManagementError) -> str:
    return (
        f"Unreachable: {error}. Is the server running, and can the console's workers reach"
        f" {server.endpoint}?"
    )


def _refusal(server: Server, error: PrismaError) -> str:
    """Why the server refused the console's token, and what to do about it."""
    said = f"(The server said: {error})"
    if error.code == EXPIRED_TOKEN:
        return (
            "Token refused as expired: the console signs a fresh token for every call, so the"
            f" server's clock (or the console's) is wrong. {said}"
        )
    if error.code != INVALID_TOKEN:
        return f"The server refused to list its services: {error}"
    if server.private_key:
        return (
            "Key not installed: the server does not have this public key: paste the"
            f" configuration above and restart it. {said}"
        )
    return (
        "Wrong secret: the server refused a token signed with this management API secret."
        f" Check its managementApiSecret (PRISMA_MANAGEMENT_API_SECRET). {said}"
    )


def _refuse_open(server: Server) -> None:
    """A management API that answers without a token is anyone's (see the module's docstring)."""
    try:
        server.management_client().list_projects()
    except ManagementError:
        return  # refused (or gone meanwhile): secured
    what = "managementPublicKey" if server.private_key else "managementApiSecret"
    raise ManagementError(
        "Management API open: the server lists and changes its services for anyone, without a"
        " token, so another workspace or anyone who can reach it could deploy to it or delete"
        f" its services. Set its {what} as shown above and restart it."
    )


def _import_services(server: Server) -> None:
    """The services already on the server appear in the console with their history (they keep
    working on the server whatever happens here, so a failure is logged, not fatal). Histories
    are read for IMPORT_HISTORY_SECONDS at most, well within the provisioning run's stale
    limit; the periodic reconciliation reads the rest within a minute."""
    try:
        found = runs.discover_services(server)
    except ManagementError as error:
        log.warning("listing the services of server %s failed: %s", server.id, error)
        return
    if not found:
        return
    imported = server.services.filter(
        origin=Service.Origin.SERVER, status=Service.Status.NEW
    ).select_related("server__workspace")
    deadline = time.monotonic() + IMPORT_HISTORY_SECONDS
    for service in imported:
        if time.monotonic() > deadline:
            break
        try:
            runs.reconcile_service(service)
        except (ManagementError, ValueError) as error:
            log.warning("reading the history of service %s failed: %s", service.id, error)


# --- key rotation -------------------------------------------------------------------------------


def _rotatable(user: User, server: Server) -> Server:
    _require_admin(user, server.workspace)
    if server.kind != Server.Kind.SELF_HOSTED or not server.private_key:
        raise ValidationError("Only a self-hosted server connected with a key pair rotates keys.")
    return Server.objects.select_for_update().select_related("workspace").get(id=server.id)


@transaction.atomic
def start_rotation(user: User, server: Server, *, request: HttpRequest | None = None) -> Server:
    """Generate the next key pair; the current one keeps signing until `confirm_rotation`.
    A rotation already started is kept (its public key may already be on the server)."""
    server = _rotatable(user, server)
    if server.next_private_key:
        return server
    key_pair = tokens.generate_key_pair()
    server.next_public_key_pem = key_pair.public_pem
    server.next_private_key = crypto.encrypt(key_pair.private_pem)
    server.rotation_started_at = timezone.now()
    server.save(update_fields=["next_public_key_pem", "next_private_key", "rotation_started_at"])
    _audit(AuditAction.SERVER_KEY_ROTATION_STARTED, user, server, request)
    return server


def confirm_rotation(user: User, server: Server, *, request: HttpRequest | None = None) -> Server:
    """Switch to the next key pair once the server accepts it: an authenticated `listProjects`
    signed with the new key. Otherwise ValidationError with the reason, and nothing changes
    (the current key keeps signing).

    One bounded call (SERVER_HEALTH_TIMEOUT) in the request, as a "Test connection" button:
    the person waits for the verdict, and nothing is written until the server said yes."""
    with transaction.atomic():
        server = _rotatable(user, server)
    if not server.next_private_key:
        raise ValidationError("No key rotation in progress: start one first.")
    verified_key = server.next_public_key_pem
    client = server.management_client(
        tokens.rotation_token(server), timeout=settings.SERVER_HEALTH_TIMEOUT
    )
    try:
        client.list_projects()
    except PrismaError as error:
        if error.code == INVALID_TOKEN:
            raise ValidationError(
                "The server does not accept the new key yet: paste the configuration with both"
                " keys and restart it, then confirm again. The current key keeps signing"
                f" meanwhile. (The server said: {error})"
            ) from None
        raise ValidationError(f"The server refused the new key: {error}") from None
    except ServerUnreachable as error:
        raise ValidationError(
            f"{_unreachable(server, error)} The current key keeps signing meanwhile."
        ) from None
    with transaction.atomic():
        server = _rotatable(user, server)
        if server.next_public_key_pem != verified_key:  # cancelled or restarted meanwhile
            raise ValidationError("The rotation changed meanwhile: check the page and try again.")
        server.public_key_pem = server.next_public_key_pem
        server.private_key = server.next_private_key
        server.next_public_key_pem, server.next_private_key = "", ""
        server.rotation_started_at = None
        server.save(
            update_fields=[
                "public_key_pem",
                "private_key",
                "next_public_key_pem",
                "next_private_key",
                "rotation_started_at",
            ]
        )
        _audit(AuditAction.SERVER_KEY_ROTATED, user, server, request)
    return server


@transaction.atomic
def cancel_rotation(user: User, server: Server, *, request: HttpRequest | None = None) -> Server:
    """Forget the next key pair; the current one goes on signing."""
    server = _rotatable(user, server)
    if not server.next_private_key:
        return server
    server.next_public_key_pem, server.next_private_key = "", ""
    server.rotation_started_at = None
    server.save(update_fields=["next_public_key_pem", "next_private_key", "rotation_started_at"])
    _audit(AuditAction.SERVER_KEY_ROTATION_CANCELLED, user, server, request)
    return server


def _audit(action: AuditAction, user: User, server: Server, request: HttpRequest | None) -> None:
    audit.record(
        action,
        request=request,
        actor=user,
        workspace=server.workspace,
        server=str(server.id),
        name=server.name,
    )


# --- what the user pastes into their server ----------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """The server's configuration with the public key(s) it must have, in the forms people
    run a Prisma server with. Exact and complete, so it can be pasted as it is."""

    public_keys: str  # the PEM block(s) for `managementPublicKey`
    yaml: str  # PRISMA_CONFIG (or a PRISMA_CONFIG_PATH file)
    env: str  # PRISMA_CONFIG as one environment variable (JSON is YAML)
    compose: str  # a docker-compose `runtime` service


def configuration(server: Server) -> Configuration | None:
    """The configuration to paste, with both public keys while a rotation is in progress (the
    current one first); None for a server connected with a secret (it has its own)."""
    if not server.public_key_pem:
        return None
    keys = [server.public_key_pem.strip()]
    if server.next_public_key_pem:
        keys.append(server.next_public_key_pem.strip())
    public_keys = "\n".join(keys) + "\n"
    port = _port(server.endpoint)
    indented = "".join(f"  {line}\n" for line in public_keys.splitlines())
    database = "".join(f"    {key}: {value}\n" for key, value in EXAMPLE_DATABASE.items())
    yaml_text = (
        f"port: {port}\n"
        f"managementPublicKey: |\n{indented}"
        "databases:\n"
        "  default:  # your server's database: keep what it has\n"
        f"{database}"
    )
    document = {
        "port": port,
        "managementPublicKey": public_keys,
        "databases": {"default": EXAMPLE_DATABASE},
    }
    env = f"PRISMA_CONFIG='{json.dumps(document)}'"
    nested = "".join(f"        {line}\n" for line in yaml_text.splitlines())
    compose = (
        "  runtime:\n"
        "    image: refract:latest\n"
        '    command: ["python", "-m", "runtime", "--host", "0.0.0.0"]\n'
        "    environment:\n"
        "      PRISMA_CONFIG: |\n"
        f"{nested}"
        f'    ports: ["{port}:{port}"]\n'
    )
    return Configuration(public_keys=public_keys, yaml=yaml_text, env=env, compose=compose)


def _port(endpoint: str) -> int:
    """The port the server listens on: the endpoint's, unless it is a proxy's default."""
    try:
        return urlsplit(endpoint).port or DEFAULT_PORT
    except ValueError:
        return DEFAULT_PORT
