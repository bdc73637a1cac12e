"""Services and their deploys: the workflows. Views, the REST API, the cloud API and tasks call
these and nothing else writes services or deploys.

A deploy follows DESIGN invariant 5: the row is created `queued`, the task is enqueued on
commit, a worker claims it with a conditional UPDATE (only the oldest queued deploy of a service
with none running: one deploy at a time per service, in order), keeps a heartbeat while it talks
to the server, and ends it in a final state. Only the holder of the claim may end it, so a deploy
cancelled or reaped meanwhile is not overwritten by a worker that comes back.

What the history says comes from the server: the revision and status of a deploy are the ones
`deploy`, `migrationStatus` and `listMigrations` report, never what the console expected.
"""

from __future__ import annotations

import logging
import re
import secrets as random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import db
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction, Role, User, get_membership
from servers import tokens
from servers.management_api import ManagementClient, ManagementError, PrismaError, ServerUnreachable
from servers.models import (
    MAX_SCHEMA_NAME_BYTES,
    MAX_STAGE_LENGTH,
    RESERVED_NAMES,
    SERVICE_NAME_RE,
    STAGE_NAME_RE,
    Deploy,
    Server,
    Service,
)

log = logging.getLogger(__name__)

DEFAULT_STAGE = "dev"
MAX_DATAMODEL_BYTES = 256 * 1024
# Servers a deploy may be asked of: a provisioning, failed or deleting one has nothing to take it.
DEPLOYABLE = (Server.Status.HEALTHY, Server.Status.UNREACHABLE)
# Prisma's open migration states; anything else is final (SUCCESS, ROLLBACK_*).
OPEN_MIGRATION = {"PENDING", "IN_PROGRESS", "ROLLING_BACK"}
PROJECT_EXISTS = 4005
PROJECT_NOT_FOUND = 4000
DATAMODEL_DOES_NOT_PARSE = 3017  # InvalidQuery: Prisma's GraphQL parser refused the types


# --- names ------------------------------------------------------------------------------------


def name_budget(server: Server) -> int:
    """How many bytes a service name and its stage may take together on this server: the
    schema `<project>$<stage>` must fit PostgreSQL's 63 bytes, and a sandbox's project carries
    the workspace (`<workspace>~<service>`)."""
    return MAX_SCHEMA_NAME_BYTES - len(server.project_name("").encode()) - 1


def validate_names(server: Server, name: str, stage: str) -> None:
    """Field errors for a service name and stage the server would refuse or cut short."""
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the service a name."
    elif name in RESERVED_NAMES:
        errors["name"] = f"“{name}” is reserved by Prisma; choose another name."
    elif not re.match(SERVICE_NAME_RE, name):
        errors["name"] = "Start with a letter; use letters, digits, hyphens and underscores."
    if not stage:
        errors["stage"] = "Give the stage a name, such as dev or prod."
    elif stage in RESERVED_NAMES:
        errors["stage"] = f"“{stage}” is reserved by Prisma; choose another stage."
    elif not re.match(STAGE_NAME_RE, stage) or len(stage) > MAX_STAGE_LENGTH:
        errors["stage"] = (
            f"Start with a letter; use up to {MAX_STAGE_LENGTH} letters, digits, hyphens and"
            " underscores."
        )
    budget = name_budget(server)
    if not errors and len(name) + len(stage) > budget:
        errors["name"] = (
            f"Too long: on this server a service name and its stage may have {budget}"
            f" characters together (“{name}” and “{stage}” have {len(name) + len(stage)}),"
            " since they make the database schema's name."
        )
    if errors:
        raise ValidationError(errors)


def validate_datamodel(datamodel: str) -> str:
    if not isinstance(datamodel, str) or not datamodel.strip():
        raise ValidationError({"datamodel": "The datamodel is empty."})
    if len(datamodel.encode()) > MAX_DATAMODEL_BYTES:
        raise ValidationError(
            {"datamodel": f"The datamodel is larger than {MAX_DATAMODEL_BYTES // 1024} KB."}
        )
    return datamodel.replace("\r\n", "\n")


def service_token(service: Service, ttl: int = 7 * 24 * 3600) -> str:
    """A service token as `prisma1 token` signs it (protocol reference 7.3): HS256 with the
    service's secret, `{data: {service: "<name>@<stage>", roles: ["admin"]}}`."""
    import jwt

    secret = service.secret_value
    if not secret:
        raise ValueError("The service has no secret: its API needs no token.")
    now = int(time.time())
    claims = {
        "data": {"service": f"{service.name}@{service.stage}", "roles": ["admin"]},
        "iat": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def issue_service_token(user: User, service: Service, *, request: HttpRequest | None = None) -> str:
    """Another service token for a member (the first is shown once, at creation); audited."""
    _member(user, service.server)
    if service.status == Service.Status.DELETING:
        raise ValueError("The service is being deleted.")
    token = service_token(service)
    audit.record(
        AuditAction.SERVICE_TOKEN_ISSUED,
        request=request,
        actor=user,
        workspace=service.server.workspace,
        service=str(service.id),
        name=f"{service.name}/{service.stage}",
    )
    return token


# --- creating, deploying, cancelling, deleting ----------------------------------------------


def _member(user: User, server: Server, min_role: str = Role.MEMBER) -> None:
    membership = get_membership(user, server.workspace.slug)  # 404 for strangers
    if not membership.has_role(min_role):
        raise PermissionDenied("Your role in this workspace cannot do that.")


def _enqueue(deploy: Deploy) -> None:
    from servers.tasks import run_deploy  # the task module imports this one

    deploy_id = str(deploy.id)
    transaction.on_commit(lambda: run_deploy.delay(deploy_id))


def _check_deployable(server: Server) -> None:
    if server.status not in DEPLOYABLE:
        raise ValidationError(
            {
                "server": f"{server.name} is {server.get_status_display().lower()}: it cannot take"
                " deploys now."
            }
        )


@dataclass
class NewService:
    service: Service
    deploy: Deploy
    token: str  # a service token, shown once; "" when the service has no secret


@transaction.atomic
def create_service(
    user: User,
    server: Server,
    name: str,
    stage: str,
    datamodel: str,
    *,
    starter: str = "",
    protect: bool = True,
    source: str = Deploy.Source.CONSOLE,
    request: HttpRequest | None = None,
) -> NewService:
    """A new service on the server, deployed at once: the first deploy is queued with it.

    `protect` gives it a random secret, so its API answers only requests with a service token.
    """
    _member(user, server)
    _check_deployable(server)
    name, stage = (name or "").strip(), (stage or "").strip() or DEFAULT_STAGE
    validate_names(server, name, stage)
    datamodel = validate_datamodel(datamodel)
    service = Service(
        server=server,
        name=name,
        stage=stage,
        starter=starter,
        origin=source,
        created_by=user,
    )
    if protect:
        service.set_secret(random.token_urlsafe(32))
    try:
        with transaction.atomic():
            service.save()
    except IntegrityError:
        raise ValidationError(
            {"name": f"{server.name} already has a service {name} with stage {stage}."}
        ) from None
    audit.record(
        AuditAction.SERVICE_CREATED,
        request=request,
        actor=user,
        workspace=server.workspace,
        service=str(service.id),
        name=f"{name}/{stage}",
        server=str(server.id),
    )
    deploy = _queue(user, service, datamodel, source=source)
    token = service_token(service) if protect else ""
    return NewService(service, deploy, token)


def _queue(
    user: User | None,
    service: Service,
    datamodel: str,
    *,
    source: str,
    force: bool = False,
    dry_run: bool = False,
    redeploy_of: Deploy | None = None,
) -> Deploy:
    deploy = Deploy.objects.create(
        service=service,
        datamodel=datamodel,
        source=source,
        requested_by=user,
        force=force,
        dry_run=dry_run,
        redeploy_of=redeploy_of,
    )
    _enqueue(deploy)
    return deploy


@transaction.atomic
def request_deploy(
    user: User,
    service: Service,
    datamodel: str,
    *,
    source: str = Deploy.Source.CONSOLE,
    force: bool = False,
    dry_run: bool = False,
    request: HttpRequest | None = None,
) -> Deploy:
    """Queue a deploy (or a dry run) of `datamodel`; it runs after the service's earlier ones."""
    _member(user, service.server)
    _check_deployable(service.server)
    if service.status in (Service.Status.DELETING,):
        raise ValidationError({"service": "The service is being deleted."})
    deploy = _queue(
        user, service, validate_datamodel(datamodel), source=source, force=force, dry_run=dry_run
    )
    if not dry_run:
        audit.record(
            AuditAction.DEPLOY_REQUESTED,
            request=request,
            actor=user,
            workspace=service.server.workspace,
            service=str(service.id),
            deploy=str(deploy.id),
            force=force,
        )
    return deploy


@transaction.atomic
def redeploy(
    user: User,
    deploy: Deploy,
    *,
    force: bool = False,
    source: str = Deploy.Source.CONSOLE,
    request: HttpRequest | None = None,
) -> Deploy:
    """Deploy an earlier deploy's datamodel again ("Redeploy this revision": a rollback), or the
    same one with `force` after its destructive warnings were confirmed."""
    service = deploy.service
    _member(user, service.server)
    _check_deployable(service.server)
    if service.status == Service.Status.DELETING:
        raise ValidationError({"service": "The service is being deleted."})
    again = _queue(user, service, deploy.datamodel, source=source, force=force, redeploy_of=deploy)
    audit.record(
        AuditAction.DEPLOY_REQUESTED,
        request=request,
        actor=user,
        workspace=service.server.workspace,
        service=str(service.id),
        deploy=str(again.id),
        redeploy_of=str(deploy.id),
        force=force,
    )
    return again


def is_stuck(deploy: Deploy, now: datetime | None = None) -> bool:
    """A running deploy that stopped showing life: its worker's heartbeat is older than
    DEPLOY_STALE_SECONDS, or the server's migration has not moved for DEPLOY_STALL_SECONDS."""
    if deploy.status != Deploy.Status.RUNNING:
        return False
    now = now or timezone.now()
    beat = deploy.heartbeat_at or deploy.started_at or deploy.created_at
    if beat < now - timedelta(seconds=settings.DEPLOY_STALE_SECONDS):
        return True
    moved = deploy.progress_at or deploy.started_at or deploy.created_at
    return moved < now - timedelta(seconds=settings.DEPLOY_STALL_SECONDS)


@transaction.atomic
def cancel_deploy(user: User, deploy: Deploy, *, request: HttpRequest | None = None) -> Deploy:
    """Cancel a queued deploy, or a running one that is stuck. A running deploy that is making
    progress cannot be stopped half-way: the server is applying its migration."""
    _member(user, deploy.service.server)
    deploy = Deploy.objects.select_for_update().get(id=deploy.id)
    if deploy.status == Deploy.Status.QUEUED:
        reason = f"cancelled by {user.email} before it started"
    elif deploy.status == Deploy.Status.RUNNING and is_stuck(deploy):
        reason = (
            f"cancelled by {user.email}: it stopped making progress (last sign of life"
            f" {(deploy.heartbeat_at or deploy.started_at):%Y-%m-%d %H:%M:%S} UTC). The server's"
            " migration status is the truth: check the history after the next status check."
        )
    elif deploy.status == Deploy.Status.RUNNING:
        raise ValidationError(
            "This deploy is running and the server is applying it; it cannot be stopped half-way."
        )
    else:
        raise ValidationError(f"This deploy already ended ({deploy.get_status_display()}).")
    Deploy.objects.filter(id=deploy.id).update(
        status=Deploy.Status.CANCELLED, reason=reason, finished_at=timezone.now(), claim_id=None
    )
    deploy.refresh_from_db()
    audit.record(
        AuditAction.DEPLOY_CANCELLED,
        request=request,
        actor=user,
        workspace=deploy.service.server.workspace,
        service=str(deploy.service_id),
        deploy=str(deploy.id),
    )
    _wake_next(deploy.service_id)
    return deploy


@transaction.atomic
def delete_service(user: User, service: Service, *, request: HttpRequest | None = None) -> Service:
    """Delete the service on its server (in a task) and then here; idempotent. Its queued
    deploys are cancelled; a running one finishes first."""
    _member(user, service.server)
    Service.objects.filter(id=service.id).exclude(status=Service.Status.DELETING).update(
        status=Service.Status.DELETING,
        status_reason="",
        claim_id=None,
        heartbeat_at=None,
        attempts=0,
    )
    Deploy.objects.filter(service=service, status=Deploy.Status.QUEUED).update(
        status=Deploy.Status.CANCELLED,
        reason="cancelled: the service is being deleted",
        finished_at=timezone.now(),
    )
    service.status = Service.Status.DELETING
    audit.record(
        AuditAction.SERVICE_DELETED,
        request=request,
        actor=user,
        workspace=service.server.workspace,
        service=str(service.id),
        name=f"{service.name}/{service.stage}",
    )
    from servers.tasks import delete_service as task

    service_id = str(service.id)
    transaction.on_commit(lambda: task.delay(service_id))
    return service


@transaction.atomic
def record_cli_service(user: User, server: Server, name: str, stage: str) -> Service:
    """A service the Prisma CLI deployed straight to a server (`addServiceToCloudDBIfMissing`):
    recorded once; its deploys are read from the server by `reconcile_service`, queued now."""
    _member(user, server)
    validate_names(server, name, stage)
    service, created = Service.objects.get_or_create(
        server=server,
        name=name,
        stage=stage,
        defaults={"origin": Service.Origin.CLI, "created_by": user, "status": Service.Status.NEW},
    )
    if created:
        audit.record(
            AuditAction.SERVICE_CREATED,
            actor=user,
            workspace=server.workspace,
            service=str(service.id),
            name=f"{name}/{stage}",
            server=str(server.id),
            origin="cli",
        )
    from servers.tasks import reconcile_service

    service_id = str(service.id)
    transaction.on_commit(lambda: reconcile_service.delay(service_id))
    return service


# --- the deploy task --------------------------------------------------------------------------


def _client(service: Service) -> ManagementClient:
    server = service.server
    return ManagementClient(
        server.endpoint, token=tokens.cluster_token(server, service.name, service.stage)
    )


def claim(deploy_id: str, task_id: str = "") -> tuple[Deploy, uuid.UUID] | None:
    """Take a queued deploy if it is its service's turn: no other deploy of the service is
    running and none queued before it. The service row is locked while deciding, so two workers
    cannot both start deploys of one service."""
    with transaction.atomic():
        deploy = Deploy.objects.filter(id=deploy_id).only("id", "service_id", "status").first()
        if deploy is None or deploy.status != Deploy.Status.QUEUED:
            return None
        Service.objects.select_for_update().filter(id=deploy.service_id).first()
        running = Deploy.objects.filter(
            service_id=deploy.service_id, status=Deploy.Status.RUNNING
        ).exists()
        first_queued = (
            Deploy.objects.filter(service_id=deploy.service_id, status=Deploy.Status.QUEUED)
            .order_by("created_at", "id")
            .values_list("id", flat=True)
            .first()
        )
        if running or first_queued != deploy.id:
            return None  # its turn comes when the one ahead ends (_wake_next)
        claim_id = uuid.uuid4()
        now = timezone.now()
        taken = Deploy.objects.filter(id=deploy_id, status=Deploy.Status.QUEUED).update(
            status=Deploy.Status.RUNNING,
            claim_id=claim_id,
            heartbeat_at=now,
            progress_at=now,
            started_at=now,
            task_id=task_id[:64],
            attempts=F("attempts") + 1,
        )
        if not taken:
            return None
    return Deploy.objects.select_related("service__server__workspace").get(id=deploy_id), claim_id


class LostClaim(Exception):
    """The deploy was cancelled or reaped while this worker ran it."""


def _beat(deploy: Deploy, claim_id: uuid.UUID, **fields: Any) -> None:
    fields.setdefault("heartbeat_at", timezone.now())
    if not Deploy.objects.filter(
        id=deploy.id, claim_id=claim_id, status=Deploy.Status.RUNNING
    ).update(**fields):
        raise LostClaim(str(deploy.id))
    for key, value in fields.items():
        setattr(deploy, key, value)


def _finish(
    deploy: Deploy, claim_id: uuid.UUID, status: str, reason: str = "", **fields: Any
) -> bool:
    now = timezone.now()
    ended = Deploy.objects.filter(
        id=deploy.id, claim_id=claim_id, status=Deploy.Status.RUNNING
    ).update(status=status, reason=reason[:4000], finished_at=now, heartbeat_at=now, **fields)
    if ended:
        deploy.status, deploy.reason = status, reason
        for key, value in fields.items():
            setattr(deploy, key, value)
    return bool(ended)


def _wake_next(service_id: uuid.UUID | str) -> None:
    """Queue the service's next deploy, now that the one ahead of it ended."""
    following = (
        Deploy.objects.filter(service_id=service_id, status=Deploy.Status.QUEUED)
        .order_by("created_at", "id")
        .first()
    )
    if following is not None:
        _enqueue(following)


def _with_retries(deploy: Deploy, claim_id: uuid.UUID, call, what: str):
    """Run one management call; a server that cannot be reached is tried again with back-off
    (DEPLOY_RETRY_DELAYS), keeping the heartbeat, then the deploy fails with the reason."""
    delays = list(settings.DEPLOY_RETRY_DELAYS)
    while True:
        try:
            return call()
        except ServerUnreachable as error:
            if not delays:
                raise ServerUnreachable(
                    f"{what}: {error} (tried {len(settings.DEPLOY_RETRY_DELAYS) + 1} times)"
                ) from None
            delay = delays.pop(0)
            log.info("deploy %s: %s failed (%s); again in %s s", deploy.id, what, error, delay)
            _beat(deploy, claim_id, reason=f"{what}: {error}; trying again in {delay} s")
            time.sleep(delay)


def _ensure_project(client: ManagementClient, service: Service) -> None:
    secrets = [service.secret_value] if service.secret else None
    try:
        client.add_project(service.project, service.stage, secrets)
    except PrismaError as error:
        if error.code != PROJECT_EXISTS:
            raise


def run_deploy(deploy_id: str, task_id: str = "") -> str:
    """The deploy task's body: idempotent (a finished, held or not-yet-its-turn deploy is left
    alone). Returns the final status, or why nothing was done."""
    claimed = claim(deploy_id, task_id)
    if claimed is None:
        return "skipped"
    deploy, claim_id = claimed
    try:
        with _pulse(deploy, claim_id):
            status = _run(deploy, claim_id)
    except LostClaim:
        status = "lost claim"
    except Exception as error:  # never leave it running: the reaper would only retry it
        log.exception("deploy %s failed", deploy.id)
        _finish(deploy, claim_id, Deploy.Status.FAILED, f"internal error: {error}")
        status = Deploy.Status.FAILED
    _wake_next(deploy.service_id)
    return status


@contextmanager
def _pulse(deploy: Deploy, claim_id: uuid.UUID) -> Iterator[None]:
    """Keep the heartbeat of a live run fresh while it waits on the server: a thread beats every
    quarter of DEPLOY_STALE_SECONDS, so however long one call may take (SERVER_MANAGEMENT_TIMEOUT,
    a back-off delay), the reaper never takes a live deploy for a dead one and runs it twice.
    A killed worker takes the thread with it, and the heartbeat goes stale as it should."""
    stop = threading.Event()
    interval = max(settings.DEPLOY_STALE_SECONDS / 4, 0.1)

    def beat() -> None:
        try:
            while not stop.wait(interval):
                Deploy.objects.filter(
                    id=deploy.id, claim_id=claim_id, status=Deploy.Status.RUNNING
                ).update(heartbeat_at=timezone.now())
        finally:
            db.connection.close()  # the thread's own connection

    thread = threading.Thread(target=beat, name=f"deploy-{deploy.id}-pulse", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run(deploy: Deploy, claim_id: uuid.UUID) -> str:
    service = deploy.service
    try:
        client = _client(service)
        project, stage = service.project, service.stage
        _with_retries(deploy, claim_id, lambda: _ensure_project(client, service), "addProject")
        secrets = [service.secret_value] if service.secret else None
        payload = _with_retries(
            deploy,
            claim_id,
            lambda: client.deploy(
                project,
                stage,
                deploy.datamodel,
                secrets=secrets,
                dry_run=deploy.dry_run,
                force=deploy.force,
            ),
            "deploy",
        )
    except ServerUnreachable as error:
        return _fail(deploy, claim_id, _unreachable(service, error))
    except PrismaError as error:
        # A datamodel that does not parse is refused as a GraphQL error, not in the payload's
        # errors: it is shown with the others, as an error of the whole datamodel.
        errors: list[dict[str, Any]] = []
        if error.code == DATAMODEL_DOES_NOT_PARSE:
            message = str(error.errors[0].get("message", error))
            errors = [{"type": "Global", "field": None, "description": message}]
        return _fail(deploy, claim_id, f"the server refused the deploy: {error}", errors=errors)
    except (ManagementError, ValueError, tokens.PlatformKeyMissing) as error:
        _finish(deploy, claim_id, Deploy.Status.FAILED, f"the server refused the deploy: {error}")
        return Deploy.Status.FAILED
    errors, warnings = payload.get("errors") or [], payload.get("warnings") or []
    migration = payload.get("migration")
    # A deploy claimed again after its worker died: the server took its migration the first
    # time and now answers that nothing changes; the steps recorded then stay its history.
    steps = (migration or {}).get("steps") or payload.get("steps") or deploy.steps or []
    _beat(deploy, claim_id, steps=steps, errors=errors, warnings=warnings, reason="")
    if errors:
        count = len(errors)
        return _fail(deploy, claim_id, f"the datamodel has {count} error{'s' * (count != 1)}")
    if deploy.dry_run:
        _finish(deploy, claim_id, Deploy.Status.SUCCEEDED)
        return Deploy.Status.SUCCEEDED
    if migration is None and warnings and not deploy.force:
        return _fail(
            deploy,
            claim_id,
            "the server warns that this deploy would lose data; confirm to deploy it with force",
        )
    try:
        if migration is None:  # nothing to change: the service stays at its revision
            status = _with_retries(
                deploy, claim_id, lambda: client.migration_status(project, stage), "migrationStatus"
            )
        else:
            status = _await_migration(deploy, claim_id, client, int(migration["revision"]))
    except ServerUnreachable as error:
        return _fail(deploy, claim_id, _unreachable(service, error))
    except ManagementError as error:
        return _fail(deploy, claim_id, f"migrationStatus failed: {error}")
    if status is None:
        return Deploy.Status.FAILED  # _await_migration ended it
    revision = int(status["revision"])
    if status["status"] != "SUCCESS":
        return _fail(
            deploy,
            claim_id,
            f"the server's migration ended {status['status']}: "
            + "; ".join(map(str, status.get("errors") or [])),
            revision=revision,
            migration_status=status["status"],
        )
    if _finish(
        deploy,
        claim_id,
        Deploy.Status.SUCCEEDED,
        revision=revision,
        migration_status=status["status"],
        applied=status.get("applied"),
    ):
        Service.objects.filter(id=service.id).exclude(status=Service.Status.DELETING).update(
            status=Service.Status.LIVE,
            datamodel=deploy.datamodel,
            revision=revision,
            status_reason="",
        )
    return Deploy.Status.SUCCEEDED


def _unreachable(service: Service, error: ServerUnreachable) -> str:
    """The reason names the server as the console lists it, not only the URL that failed."""
    return f"the server {service.server.name} cannot be reached: {error}"


def _fail(deploy: Deploy, claim_id: uuid.UUID, reason: str, **fields: Any) -> str:
    _finish(deploy, claim_id, Deploy.Status.FAILED, reason, **fields)
    return Deploy.Status.FAILED


def _await_migration(
    deploy: Deploy, claim_id: uuid.UUID, client: ManagementClient, revision: int
) -> dict[str, Any] | None:
    """Poll `migrationStatus` until the server ends the migration of `revision`. A migration
    whose `applied` count does not move for DEPLOY_STALL_SECONDS fails the deploy as stuck."""
    project, stage = deploy.service.project, deploy.service.stage
    _beat(deploy, claim_id, revision=revision)
    seen: tuple[str, int] | None = None
    moved = time.monotonic()
    while True:
        status = _with_retries(
            deploy, claim_id, lambda: client.migration_status(project, stage), "migrationStatus"
        )
        current = (str(status.get("status")), int(status.get("applied") or 0))
        now = time.monotonic()
        if current != seen:
            seen, moved = current, now
            _beat(
                deploy,
                claim_id,
                migration_status=current[0][:24],
                applied=current[1],
                progress_at=timezone.now(),
            )
        else:
            _beat(deploy, claim_id)
        at = int(status.get("revision") or 0)
        if at >= revision and current[0] not in OPEN_MIGRATION:
            if at == revision:
                return status
            # A later migration already ended (another client deployed meanwhile): ours is
            # in the server's list with its own outcome.
            return _listed(client, project, stage, revision) or status
        if at < revision and current[0] not in OPEN_MIGRATION:
            # The server reports an older revision as its latest success: ours was rolled back.
            listed = _listed(client, project, stage, revision)
            if listed is not None and listed["status"] not in OPEN_MIGRATION:
                return listed
        if now - moved > settings.DEPLOY_STALL_SECONDS:
            _fail(
                deploy,
                claim_id,
                f"stuck: the server's migration {revision} stayed {current[0]} with"
                f" {current[1]} steps applied for {settings.DEPLOY_STALL_SECONDS} s",
            )
            return None
        time.sleep(settings.DEPLOY_POLL_SECONDS)


def _listed(
    client: ManagementClient, project: str, stage: str, revision: int
) -> dict[str, Any] | None:
    for migration in client.list_migrations(project, stage):
        if int(migration.get("revision") or 0) == revision:
            return migration
    return None


# --- reaping and reconciling ------------------------------------------------------------------


@transaction.atomic
def reap_deploys(now: datetime | None = None) -> int:
    """Deploys whose worker went away (no heartbeat for DEPLOY_STALE_SECONDS): queued again, up
    to DEPLOY_ATTEMPTS claims (deploying the same datamodel twice is harmless: the server
    answers that nothing changed), then failed. Queued deploys whose task message was lost
    are enqueued again. Returns how many rows it touched."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.DEPLOY_STALE_SECONDS)
    touched = 0
    running = Deploy.objects.select_for_update(skip_locked=True).filter(
        status=Deploy.Status.RUNNING, heartbeat_at__lt=stale
    )
    for deploy in running:
        touched += 1
        if deploy.attempts >= settings.DEPLOY_ATTEMPTS:
            Deploy.objects.filter(id=deploy.id, status=Deploy.Status.RUNNING).update(
                status=Deploy.Status.FAILED,
                reason=(
                    f"the worker went away {deploy.attempts} times without finishing; the"
                    " server's history shows whether the migration was applied"
                ),
                finished_at=now,
                claim_id=None,
            )
            _wake_next(deploy.service_id)
            continue
        Deploy.objects.filter(id=deploy.id, status=Deploy.Status.RUNNING).update(
            status=Deploy.Status.QUEUED,
            claim_id=None,
            heartbeat_at=None,
            reason="the worker went away; queued again",
        )
        _enqueue(deploy)
    waiting = (
        Deploy.objects.filter(status=Deploy.Status.QUEUED, created_at__lt=stale)
        .exclude(service__deploys__status=Deploy.Status.RUNNING)
        .order_by("service_id", "created_at")
        .distinct("service_id")
    )
    for deploy in waiting:
        touched += 1
        _enqueue(deploy)
    return touched


def run_delete(service_id: str) -> str:
    """The delete task's body: `deleteProject` on the server (an unknown project is already
    gone), then the row. Idempotent; a server that cannot be reached leaves it `deleting` for
    the next attempt, and after DEPLOY_ATTEMPTS it is marked delete_failed with the reason."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DEPLOY_STALE_SECONDS)
    claim_id = uuid.uuid4()
    taken = (
        Service.objects.filter(id=service_id, status=Service.Status.DELETING)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .update(claim_id=claim_id, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    if not taken:
        return "skipped"
    if Deploy.objects.filter(service_id=service_id, status=Deploy.Status.RUNNING).exists():
        Service.objects.filter(id=service_id, claim_id=claim_id).update(heartbeat_at=None)
        return "waiting"  # the reaper comes back once the running deploy ended
    service = Service.objects.select_related("server__workspace").get(id=service_id)
    try:
        _client(service).delete_project(service.project, service.stage)
    except PrismaError as error:
        if error.code != PROJECT_NOT_FOUND:
            return _delete_failed(service, claim_id, f"the server refused: {error}", final=True)
    except (ManagementError, ValueError, tokens.PlatformKeyMissing) as error:
        final = service.attempts >= settings.DEPLOY_ATTEMPTS
        return _delete_failed(service, claim_id, str(error), final=final)
    Service.objects.filter(id=service_id, claim_id=claim_id).delete()
    return "deleted"


def _delete_failed(service: Service, claim_id: uuid.UUID, reason: str, *, final: bool) -> str:
    fields: dict[str, Any] = {"status_reason": reason[:2000], "heartbeat_at": None}
    if final:
        fields["status"] = Service.Status.DELETE_FAILED
    Service.objects.filter(id=service.id, claim_id=claim_id).update(**fields)
    return "failed" if final else "retry"


def reap_deletes(now: datetime | None = None) -> int:
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.DEPLOY_STALE_SECONDS)
    from servers.tasks import delete_service as task

    pending = Service.objects.filter(status=Service.Status.DELETING).filter(
        Q(heartbeat_at__isnull=True, updated_at__lt=stale) | Q(heartbeat_at__lt=stale)
    )
    count = 0
    for service_id in pending.values_list("id", flat=True):
        task.delay(str(service_id))
        count += 1
    return count


def reconcile_service(service: Service) -> int:
    """Bring the service's history in line with the server's `listMigrations`, the truth:
    - a migration the console has no deploy for (made by the Prisma CLI, or by anyone with a
      token) is recorded as a CLI deploy, with its datamodel and steps;
    - a deploy the console ended otherwise than the server did (reaped after its worker went
      away, or cancelled as stuck, while the server went on and applied it) takes the server's
      outcome, and says so.
    Returns how many deploys it recorded or corrected. Raises ManagementError when the server
    cannot say."""
    client = _client(service)
    try:
        migrations = client.list_migrations(service.project, service.stage, details=True)
    except PrismaError as error:
        if error.code == PROJECT_NOT_FOUND:
            return 0  # not deployed yet, or deleted on the server behind our back
        raise
    # A deploy has a revision once the server gave it one; it stays the deploy's while the
    # deploy is still to end (queued again by the reaper after its worker died, or running):
    # the worker records that outcome, and the migration is not a CLI deploy.
    ours: dict[int, list[Deploy]] = {}
    for deploy in Deploy.objects.filter(service=service, revision__isnull=False):
        ours.setdefault(deploy.revision, []).append(deploy)
    changed = 0
    for migration in sorted(migrations, key=lambda m: int(m["revision"])):
        revision, status = int(migration["revision"]), str(migration["status"])
        if revision <= 1 or status in OPEN_MIGRATION:  # 1 is addProject's empty schema
            continue  # an open migration is recorded once it ends
        outcome = Deploy.Status.SUCCEEDED if status == "SUCCESS" else Deploy.Status.FAILED
        if revision in ours:
            for deploy in ours[revision]:
                if deploy.status == outcome or deploy.dry_run or not deploy.is_final:
                    continue
                Deploy.objects.filter(id=deploy.id, status=deploy.status).update(
                    status=outcome,
                    migration_status=status[:24],
                    reason=(
                        f"{deploy.reason} (the server's history says revision {revision}"
                        f" ended {status}: corrected)"
                    ).strip()[:4000],
                )
                changed += 1
            continue
        Deploy.objects.create(
            service=service,
            datamodel=str(migration.get("datamodel") or ""),
            source=Deploy.Source.CLI,
            status=outcome,
            reason="" if status == "SUCCESS" else f"the server's migration ended {status}",
            revision=revision,
            steps=migration.get("steps") or [],
            migration_status=status[:24],
            applied=migration.get("applied"),
            started_at=_parse_time(migration.get("startedAt")),
            finished_at=_parse_time(migration.get("finishedAt")),
        )
        changed += 1
    applied = [m for m in migrations if m["status"] == "SUCCESS"]
    if applied:
        latest = max(applied, key=lambda m: int(m["revision"]))
        Service.objects.filter(id=service.id).exclude(status=Service.Status.DELETING).exclude(
            revision=int(latest["revision"])
        ).update(
            revision=int(latest["revision"]),
            datamodel=str(latest.get("datamodel") or ""),
            status=Service.Status.LIVE,
        )
    return changed


def _parse_time(value: object) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else timezone.make_aware(parsed, timezone.utc)


def discover_services(server: Server) -> int:
    """Services of the workspace on its sandbox that the console does not know (deployed by the
    Prisma CLI), recorded so that their history appears. Returns how many it found."""
    if server.kind != Server.Kind.SANDBOX:
        return 0
    client = ManagementClient(server.endpoint, token=tokens.workspace_token(server))
    prefix = f"{server.workspace.slug}~"
    found = 0
    now = timezone.now()
    for project in client.list_projects(storage=True):
        full, stage = str(project.get("name", "")), str(project.get("stage", ""))
        if not full.startswith(prefix):
            continue
        name = full[len(prefix) :]
        service, created = Service.objects.get_or_create(
            server=server,
            name=name,
            stage=stage,
            defaults={"origin": Service.Origin.SERVER, "status": Service.Status.NEW},
        )
        found += created
        used = project.get("storageBytes")
        if isinstance(used, int | float):
            Service.objects.filter(id=service.id).update(
                storage_bytes=int(used), storage_measured_at=now
            )
    return found


def reconcile(server_ids: list[str] | None = None) -> dict[str, int]:
    """The periodic reconciliation: on each healthy server, find services deployed behind the
    console's back and record every service's migrations. One server failing never stops the
    others."""
    servers = Server.objects.select_related("workspace").filter(status=Server.Status.HEALTHY)
    if server_ids is not None:
        servers = servers.filter(id__in=server_ids)
    outcome = {"services": 0, "deploys": 0, "errors": 0}
    for server in servers:
        try:
            outcome["services"] += discover_services(server)
        except (ManagementError, tokens.PlatformKeyMissing) as error:
            log.warning("listing the services of server %s failed: %s", server.id, error)
            outcome["errors"] += 1
            continue
        live = server.services.exclude(status=Service.Status.DELETING)
        for service in live.select_related("server__workspace"):
            if service.deploys.filter(status=Deploy.Status.RUNNING).exists():
                continue  # its worker records the outcome
            try:
                outcome["deploys"] += reconcile_service(service)
            except (ManagementError, ValueError) as error:
                log.warning("reconciling service %s failed: %s", service.id, error)
                outcome["errors"] += 1
    return outcome
