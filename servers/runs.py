"""The worker's side of deploys: claim a deploy, run it against the server, keep its heartbeat,
end it; reap runs whose worker went away; delete services on their servers; reconcile the
history with what the servers say. `servers/tasks.py` calls these; the requests that queue the
work (create, deploy, cancel, delete) are in `servers/deploys.py`.

A worker claims a queued deploy with a conditional UPDATE (only the oldest queued deploy of a
service with none running: one deploy at a time per service, in order) and only the holder of
the claim may end it, so a deploy cancelled or reaped meanwhile is not overwritten by a worker
that comes back. What the history says comes from the server: the revision and status of a
deploy are the ones `deploy`, `migrationStatus` and `listMigrations` report.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django import db
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from servers import tokens
from servers.deploys import enqueue, wake_next
from servers.management_api import ManagementClient, ManagementError, PrismaError, ServerUnreachable
from servers.models import Deploy, Server, Service

log = logging.getLogger(__name__)

# Prisma's open migration states; anything else is final (SUCCESS, ROLLBACK_*).
OPEN_MIGRATION = {"PENDING", "IN_PROGRESS", "ROLLING_BACK"}
PROJECT_EXISTS = 4005
PROJECT_NOT_FOUND = 4000
DATAMODEL_DOES_NOT_PARSE = 3017  # InvalidQuery: Prisma's GraphQL parser refused the types


def _client(service: Service) -> ManagementClient:
    server = service.server
    return server.management_client(tokens.cluster_token(server, service.name, service.stage))


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
    wake_next(deploy.service_id)
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
            wake_next(deploy.service_id)
            continue
        Deploy.objects.filter(id=deploy.id, status=Deploy.Status.RUNNING).update(
            status=Deploy.Status.QUEUED,
            claim_id=None,
            heartbeat_at=None,
            reason="the worker went away; queued again",
        )
        enqueue(deploy)
    waiting = (
        Deploy.objects.filter(status=Deploy.Status.QUEUED, created_at__lt=stale)
        .exclude(service__deploys__status=Deploy.Status.RUNNING)
        .order_by("service_id", "created_at")
        .distinct("service_id")
    )
    for deploy in waiting:
        touched += 1
        enqueue(deploy)
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
    """Services on the server that the console does not know (deployed by the Prisma CLI, or
    there before a self-hosted server was connected), recorded so that their history appears,
    with each one's storage where the server measures it. On a sandbox only the workspace's
    own projects are listed. Returns how many it found."""
    client = server.management_client(tokens.server_token(server))
    prefix = f"{server.workspace.slug}~" if server.kind == Server.Kind.SANDBOX else ""
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
