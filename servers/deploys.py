"""Services and their deploys: the requests. Views, the REST API, the cloud API and tasks call
these and nothing else writes services or deploys; the worker's side (claim, run, reap,
reconcile) is `servers/runs.py`.

A deploy follows DESIGN invariant 5: the row is created `queued` and its task is enqueued on
commit; a worker then claims it, runs it and ends it in a final state (`servers.runs`).
"""

from __future__ import annotations

import logging
import re
import secrets as random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction, Role, User, get_membership
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


def audit_service(
    action: str, user: User | None, service: Service, request: HttpRequest | None, **extra: object
) -> None:
    """An audit event about a service: its workspace, id and name/stage, and `extra`."""
    audit.record(
        action,
        request=request,
        actor=user,
        workspace=service.server.workspace,
        service=str(service.id),
        name=f"{service.name}/{service.stage}",
        **extra,
    )


def issue_service_token(user: User, service: Service, *, request: HttpRequest | None = None) -> str:
    """Another service token for a member (the first is shown once, at creation); audited."""
    _member(user, service.server)
    if service.status == Service.Status.DELETING:
        raise ValueError("The service is being deleted.")
    token = service_token(service)
    audit_service(AuditAction.SERVICE_TOKEN_ISSUED, user, service, request)
    return token


# --- creating, deploying, cancelling, deleting ----------------------------------------------


def _member(user: User, server: Server, min_role: str = Role.MEMBER) -> None:
    membership = get_membership(user, server.workspace.slug)  # 404 for strangers
    if not membership.has_role(min_role):
        raise PermissionDenied("Your role in this workspace cannot do that.")


def enqueue(deploy: Deploy) -> None:
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


def _check_open(service: Service) -> None:
    """A service takes deploys unless it is on its way out (or its deletion failed: deleting
    it again is the way on)."""
    _check_deployable(service.server)
    if service.status == Service.Status.DELETING:
        raise ValidationError({"service": "The service is being deleted."})
    if service.status == Service.Status.DELETE_FAILED:
        raise ValidationError(
            {"service": f"Deleting the service failed ({service.status_reason}); delete it again."}
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
    audit_service(AuditAction.SERVICE_CREATED, user, service, request, server=str(server.id))
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
    enqueue(deploy)
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
    _check_open(service)
    deploy = _queue(
        user, service, validate_datamodel(datamodel), source=source, force=force, dry_run=dry_run
    )
    if not dry_run:
        audit_service(
            AuditAction.DEPLOY_REQUESTED, user, service, request, deploy=str(deploy.id), force=force
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
    _check_open(service)
    if not deploy.datamodel.strip():
        raise ValidationError(
            {
                "datamodel": "The server did not report this revision's datamodel (it was deployed"
                " outside the console), so it cannot be deployed again from here."
            }
        )
    again = _queue(user, service, deploy.datamodel, source=source, force=force, redeploy_of=deploy)
    audit_service(
        AuditAction.DEPLOY_REQUESTED,
        user,
        service,
        request,
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
    audit_service(
        AuditAction.DEPLOY_CANCELLED, user, deploy.service, request, deploy=str(deploy.id)
    )
    wake_next(deploy.service_id)
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
    audit_service(AuditAction.SERVICE_DELETED, user, service, request)
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
        audit_service(
            AuditAction.SERVICE_CREATED, user, service, None, server=str(server.id), origin="cli"
        )
    from servers.tasks import reconcile_service

    service_id = str(service.id)
    transaction.on_commit(lambda: reconcile_service.delay(service_id))
    return service


def wake_next(service_id: uuid.UUID | str) -> None:
    """Queue the service's next deploy, now that the one ahead of it ended."""
    following = (
        Deploy.objects.filter(service_id=service_id, status=Deploy.Status.QUEUED)
        .order_by("created_at", "id")
        .first()
    )
    if following is not None:
        enqueue(following)
