"""Workflows of servers. Views, API and tasks call these and nothing else writes servers.

Provisioning follows DESIGN invariant 5: the row is created first (status `provisioning`), the
check is queued on commit, a worker claims the row with a conditional UPDATE (a fresh
`claim_id`), keeps a heartbeat while it talks to the region, and ends it healthy or failed;
only the holder of the claim may end it. `reap_stale` retries runs whose worker went away.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import AuditAction, Role, User, Workspace, get_membership
from servers import clusters, tokens
from servers.management_api import ManagementError, PrismaError
from servers.models import Deploy, Server, Service

log = logging.getLogger(__name__)


def _enqueue_provisioning(server: Server) -> None:
    from servers.tasks import provision_server  # the task module imports this one

    server_id = str(server.id)
    transaction.on_commit(lambda: provision_server.delay(server_id))


@transaction.atomic
def provision_sandbox(
    user: User, workspace: Workspace, region: str, *, request: HttpRequest | None = None
) -> Server:
    """Create the workspace's sandbox on `region` (admins and owners) and queue its check.

    A failed sandbox is provisioned again in place; any other existing one is refused.
    """
    membership = get_membership(user, workspace.slug)  # 404 for non-members
    if not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can create servers.")
    origin = settings.SANDBOX_REGIONS.get(region)
    if origin is None:
        raise ValidationError(
            {"region": f"No sandbox region named “{region}”."}
            if settings.SANDBOX_REGIONS
            else {"region": "No sandbox regions are configured (SANDBOX_REGIONS)."}
        )
    tokens.platform_private_key()  # a clear configuration error now, not a failed task later
    existing = (
        Server.objects.select_for_update()
        .filter(workspace=workspace, kind=Server.Kind.SANDBOX, region=region)
        .first()
    )
    if existing is not None:
        if existing.status != Server.Status.FAILED:
            raise ValidationError(
                {"region": f"This workspace already has a sandbox on {region}."}
            ) from None
        _move(existing, Server.Status.PROVISIONING, "provisioning again", actor=user)
        Server.objects.filter(id=existing.id).update(claim_id=None, heartbeat_at=None, attempts=0)
        _enqueue_provisioning(existing)
        return existing
    key_pair = tokens.generate_key_pair()
    server = Server(
        workspace=workspace,
        kind=Server.Kind.SANDBOX,
        name=f"sandbox-{region}",
        endpoint=origin,
        region=region,
        public_key_pem=key_pair.public_pem,
        created_by=user,
    )
    server.set_private_key(key_pair.private_pem)
    server.full_clean()
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError:
        raise ValidationError(
            {"region": f"This workspace already has a sandbox on {region}."}
        ) from None
    audit.record(
        AuditAction.SERVER_CREATED,
        request=request,
        actor=user,
        workspace=workspace,
        server=str(server.id),
        name=server.name,
        kind=server.kind,
        region=region,
    )
    _enqueue_provisioning(server)
    return server


def _move(
    server: Server, status: str, reason: str, *, actor: User | None = None, **fields: object
) -> bool:
    """One transition, refused when illegal; recorded in the audit trail. Only rows still in
    the status the caller saw are moved (a conditional UPDATE), so racing workers cannot both
    end a run."""
    if not server.can_move_to(status):
        raise ValueError(f"a server cannot go from {server.status} to {status}")
    query = Q(id=server.id, status=server.status)
    if "claim_id" in fields:  # the caller ends its own claim: nobody else's
        query &= Q(claim_id=fields.pop("claim_id"))
    moved = Server.objects.filter(query).update(
        status=status, status_reason=reason[:2000], updated_at=timezone.now(), **fields
    )
    if moved:
        audit.record(
            AuditAction.SERVER_STATUS_CHANGED,
            actor=actor,
            workspace=server.workspace,
            server=str(server.id),
            name=server.name,
            before=server.status,
            after=status,
            reason=reason[:2000],
        )
        server.status, server.status_reason = status, reason
    return bool(moved)


def claim(server_id: str, now: datetime | None = None) -> tuple[Server, uuid.UUID] | None:
    """Take a provisioning run: only one worker at a time, and not a run someone holds alive."""
    now = now or timezone.now()
    claim_id = uuid.uuid4()
    stale = now - timedelta(seconds=settings.SERVER_STALE_SECONDS)
    taken = (
        Server.objects.filter(id=server_id, status=Server.Status.PROVISIONING)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .update(claim_id=claim_id, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    if not taken:
        return None
    return Server.objects.select_related("workspace").get(id=server_id), claim_id


def heartbeat(server: Server, claim_id: uuid.UUID) -> bool:
    return bool(
        Server.objects.filter(
            id=server.id, claim_id=claim_id, status=Server.Status.PROVISIONING
        ).update(heartbeat_at=timezone.now())
    )


def check_sandbox(server: Server) -> str:
    """Ask the region who it is and, with the workspace's token, for the workspace's services.

    Returns the server's version; raises ManagementError with a reason a person can act on.
    """
    try:  # public, as the Prisma CLI asks it
        info = server.management_client().server_info()
    except PrismaError as error:
        raise ManagementError(f"the region's serverInfo failed: {error}") from None
    version = str(info.get("version") or "")
    client = server.management_client(tokens.workspace_token(server))
    try:
        projects = client.list_projects()
    except PrismaError as error:
        # A signature the region accepted but a grant it does not know (a runtime or Prisma
        # server without workspace-wide grants): the key is right, the listing is unavailable.
        if error.code == 3015 and "none satisfied" in str(error):
            log.warning("region %s does not know workspace grants: %s", server.endpoint, error)
            return version
        raise ManagementError(f"the region refused the workspace's token: {error}") from None
    prefix = f"{server.workspace.slug}~"
    strangers = [p["name"] for p in projects if not str(p.get("name", "")).startswith(prefix)]
    if strangers:
        raise ManagementError(
            "the region listed services of other workspaces to this workspace's token"
        )
    return version


def _provisioner(server: Server) -> Callable[[Server], str]:
    """What provisioning a server of this kind means: a sandbox is checked on its region, a
    private server registered on the platform runtime and checked there, a self-hosted server
    checked with its credentials. Each returns the server's version or raises ManagementError
    with a reason a person can act on."""
    if server.kind == Server.Kind.PRIVATE:
        from servers import private

        return private.provision
    if server.kind == Server.Kind.SELF_HOSTED:
        from servers import self_hosted

        return self_hosted.check
    return check_sandbox


def run_provisioning(server_id: str) -> str:
    """The provisioning task's body: idempotent (a finished or held run is left alone)."""
    claimed = claim(server_id)
    if claimed is None:
        return "skipped"
    server, claim_id = claimed
    try:
        version = _provisioner(server)(server)
    except (ManagementError, tokens.PlatformKeyMissing) as error:
        _move(server, Server.Status.FAILED, str(error), claim_id=claim_id, heartbeat_at=None)
        return Server.Status.FAILED
    heartbeat(server, claim_id)
    ended = _move(
        server,
        Server.Status.HEALTHY,
        "",
        claim_id=claim_id,
        version=version[:40],
        last_seen_at=timezone.now(),
        heartbeat_at=None,
    )
    return Server.Status.HEALTHY if ended else "lost claim"


@transaction.atomic
def reap_stale(now: datetime | None = None) -> int:
    """Provisioning runs whose worker went away (no heartbeat for SERVER_STALE_SECONDS, or never
    picked up): queue them again, or fail them after SERVER_PROVISION_ATTEMPTS claims."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SERVER_STALE_SECONDS)
    rows = (
        Server.objects.select_for_update(skip_locked=True)
        .select_related("workspace")
        .filter(status=Server.Status.PROVISIONING)
        .filter(Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, updated_at__lt=stale))
    )
    reaped = 0
    for server in rows:
        reaped += 1
        if server.attempts >= settings.SERVER_PROVISION_ATTEMPTS:
            _move(
                server,
                Server.Status.FAILED,
                f"provisioning stopped after {server.attempts} attempts: the worker went away"
                " without finishing",
                claim_id=server.claim_id,
                heartbeat_at=None,
            )
            continue
        Server.objects.filter(id=server.id).update(claim_id=None, heartbeat_at=None, updated_at=now)
        _enqueue_provisioning(server)
    return reaped


# Statuses the periodic check moves: a provisioning run owns its row until it ends, a failed
# server waits for its owner to provision it again, a deleting one is on its way out.
CHECKED_STATUSES = (Server.Status.HEALTHY, Server.Status.UNREACHABLE)


def probe(server: Server) -> tuple[str | None, str]:
    """Ask the server its `serverInfo` (public, as the Prisma CLI asks it), within
    SERVER_HEALTH_TIMEOUT seconds per call: (version, "") when it answers, (None, reason) when
    it does not."""
    client = server.management_client(timeout=settings.SERVER_HEALTH_TIMEOUT)
    try:
        info = client.server_info()
    except ManagementError as error:
        if server.kind == Server.Kind.PRIVATE:  # not the platform runtime's internal address
            from servers.private import public

            return None, public(error, server)
        return None, str(error)
    except Exception as error:  # one odd answer must not stop the others
        log.exception("serverInfo of server %s failed", server.id)
        return None, f"serverInfo failed: {error}"
    if not isinstance(info, dict):
        return None, "serverInfo answered without a version"
    return str(info.get("version") or ""), ""


def record_health(server: Server, version: str | None, reason: str) -> str:
    """Apply one probe's outcome: healthy (version, last seen) or unreachable (the reason).

    Only a change of status is audited, once: the move is a conditional UPDATE on the status
    the check read, so two overlapping checks cannot both record it, and a server that began
    deleting meanwhile is left alone."""
    now = timezone.now()
    if version is not None:
        if server.status == Server.Status.HEALTHY:
            Server.objects.filter(id=server.id, status=Server.Status.HEALTHY).update(
                version=version[:40], last_seen_at=now, updated_at=now
            )
            return "healthy"
        moved = _move(server, Server.Status.HEALTHY, "", version=version[:40], last_seen_at=now)
        return "recovered" if moved else "changed meanwhile"
    if server.status == Server.Status.UNREACHABLE:
        Server.objects.filter(id=server.id, status=Server.Status.UNREACHABLE).update(
            status_reason=reason[:2000], updated_at=now
        )
        return "unreachable"
    moved = _move(server, Server.Status.UNREACHABLE, reason)
    return "lost" if moved else "changed meanwhile"


def check_servers() -> dict[str, int]:
    """The periodic status check (every minute by beat): every healthy or unreachable server is
    asked its `serverInfo`, concurrently and within SERVER_HEALTH_TIMEOUT each, so one slow or
    broken server neither delays the others much nor stops them. Idempotent.

    Returns how many servers ended in each outcome (healthy, recovered, unreachable, lost,
    changed meanwhile, error)."""
    servers = list(Server.objects.select_related("workspace").filter(status__in=CHECKED_STATUSES))
    outcomes: dict[str, int] = {}
    if not servers:
        return outcomes
    workers = min(settings.SERVER_HEALTH_CONCURRENCY, len(servers))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="server-health") as pool:
        probes = pool.map(probe, servers)  # no database access in the threads
        for server, (version, reason) in zip(servers, probes, strict=True):
            try:
                outcome = record_health(server, version, reason)
            except Exception:  # one server failing never stops the others
                log.exception("recording the status of server %s failed", server.id)
                outcome = "error"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


# Servers the Prisma CLI is offered as clusters and may get tokens for: configured and checked.
# One that is still provisioning, failed or being deleted has no working endpoint to offer.
CLUSTER_STATUSES = (Server.Status.HEALTHY, Server.Status.UNREACHABLE)


class UnknownServer(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name, self.known = name, known


def cluster_servers(user: User) -> list[Server]:
    """The servers of every workspace the user belongs to that the CLI may deploy to, each
    under the name the CLI knows (`clusters.cluster_name`; a sandbox it cannot be offered is
    left out)."""
    servers = (
        Server.objects.for_user(user)
        .filter(status__in=CLUSTER_STATUSES)
        .select_related("workspace")
        .order_by("workspace__slug", "name")
    )
    return [s for s in servers if clusters.cluster_name(s) is not None]


def find_cluster(user: User, workspace_slug: str, cluster_name: str) -> Server:
    """The server of the user's workspace the CLI means by a cluster name: a shared name
    (`prisma-eu1`) is the workspace's sandbox on the region it stands for, any other name a
    private or self-hosted server's own.

    A name the CLI made up from a host it did not find in the list (`default`, `local`) names
    no server, since that host may be anyone's. Http404 when the user is not a member (as for
    a workspace that does not exist), UnknownServer when the workspace has no such server to
    deploy to.
    """
    membership = get_membership(user, workspace_slug)
    servers = Server.objects.select_related("workspace").filter(
        workspace=membership.workspace, status__in=CLUSTER_STATUSES
    )
    named = {name: s for s in servers if (name := clusters.cluster_name(s)) is not None}
    if cluster_name not in named:
        raise UnknownServer(cluster_name, sorted(named))
    return named[cluster_name]


def cluster_workspace(user: User, cluster_name: str) -> str | None:
    """The slug of the one workspace of the user's that has a cluster of this name, or None
    when none or several do (the CLI sends no workspace for a private cluster whose endpoint
    has none, protocol reference 2.8)."""
    slugs = {
        s.workspace.slug for s in cluster_servers(user) if clusters.cluster_name(s) == cluster_name
    }
    return slugs.pop() if len(slugs) == 1 else None


def cli_services(user: User) -> list[Service]:
    """The services of every workspace the user belongs to, for `prisma1 list` (protocol
    reference 2.6): all but those on their way out."""
    return list(
        Service.objects.for_user(user)
        .exclude(status=Service.Status.DELETING)
        .exclude(server__status=Server.Status.DELETING)
        .select_related("server__workspace")
        .order_by("server__workspace__slug", "name", "stage")
    )


def server_service(server: Server, name: str, stage: str) -> Service | None:
    """The console's record of `name/stage` on a server the caller already resolved for the
    user (`find_cluster`), or None."""
    return (
        Service.objects.select_related("server__workspace")
        .filter(server=server, name=name, stage=stage)
        .first()
    )


def cluster_token(
    user: User, workspace_slug: str, cluster_name: str, service: str, stage: str
) -> str:
    """A short-lived token for exactly one `service/stage` on the server the CLI calls
    `cluster_name` in the user's workspace (`find_cluster`): the CLI sends it to the endpoint
    it resolved that name from (the cluster list, protocol reference 4.6). On a sandbox the
    grant is `<workspace>~<service>/<stage>`, the project name the CLI uses there.

    Http404, UnknownServer as `find_cluster`; ValueError for names that are not a service or
    stage.
    """
    server = find_cluster(user, workspace_slug, cluster_name)
    return tokens.cluster_token(server, service, stage)


# --- deleting servers ---------------------------------------------------------------------------
# A private or self-hosted server is deleted in a task, like a service: the row moves to
# `deleting` (the server's services stop taking deploys), a worker claims it, takes a private
# server off the platform runtime (dropping the services' schemas only when asked), and then
# deletes the row with its services and their history. A self-hosted server is the user's own:
# only the console's record of it goes. Sandboxes are not deleted here.


@transaction.atomic
def delete_server(
    user: User, server: Server, *, drop_schemas: bool = False, request: HttpRequest | None = None
) -> Server:
    """Ask for the server's deletion (admins and owners; the view asks for its typed name
    first). Idempotent: a server already being deleted is left to that run."""
    membership = get_membership(user, server.workspace.slug)  # 404 for non-members
    if not membership.has_role(Role.ADMIN):
        raise PermissionDenied("Only admins and owners can delete servers.")
    if server.kind == Server.Kind.SANDBOX:
        raise ValidationError("A sandbox is the workspace's slice of a region: it is not deleted.")
    server = Server.objects.select_for_update().select_related("workspace").get(id=server.id)
    if server.status == Server.Status.DELETING:
        return server
    drop_schemas = drop_schemas and server.kind == Server.Kind.PRIVATE
    what = "deleting, and dropping the services' schemas" if drop_schemas else "deleting"
    _move(server, Server.Status.DELETING, f"{what} (asked by {user.email})", actor=user)
    Server.objects.filter(id=server.id).update(
        claim_id=None, heartbeat_at=None, attempts=0, delete_schemas=drop_schemas
    )
    server.delete_schemas = drop_schemas
    Deploy.objects.filter(service__server=server, status=Deploy.Status.QUEUED).update(
        status=Deploy.Status.CANCELLED,
        reason="cancelled: the server is being deleted",
        finished_at=timezone.now(),
    )
    audit.record(
        AuditAction.SERVER_DELETE_REQUESTED,
        request=request,
        actor=user,
        workspace=server.workspace,
        server=str(server.id),
        name=server.name,
        kind=server.kind,
        drop_schemas=drop_schemas,
    )
    _enqueue_deletion(server)
    return server


def _enqueue_deletion(server: Server) -> None:
    from servers.tasks import delete_server as task

    server_id = str(server.id)
    transaction.on_commit(lambda: task.delay(server_id))


def run_deletion(server_id: str, now: datetime | None = None) -> str:
    """The delete task's body: idempotent (a deleted or held run is left alone). A server that
    cannot be removed now (the platform runtime unreachable) stays `deleting` with the reason,
    and the reaper tries again after SERVER_STALE_SECONDS."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SERVER_STALE_SECONDS)
    claim_id = uuid.uuid4()
    taken = (
        Server.objects.filter(id=server_id, status=Server.Status.DELETING)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .update(claim_id=claim_id, heartbeat_at=now, attempts=F("attempts") + 1)
    )
    if not taken:
        return "skipped"
    server = Server.objects.select_related("workspace").get(id=server_id)
    if Deploy.objects.filter(service__server=server, status=Deploy.Status.RUNNING).exists():
        # A migration is being applied: let it end rather than pull the server from under it.
        Server.objects.filter(id=server.id, claim_id=claim_id).update(
            heartbeat_at=None, updated_at=now
        )
        return "waiting"
    dropped: list[str] = []
    if server.kind == Server.Kind.PRIVATE:
        from servers import private

        try:
            dropped = private.remove(server, drop_schemas=server.delete_schemas)
        except (ManagementError, tokens.PlatformKeyMissing) as error:
            Server.objects.filter(id=server.id, claim_id=claim_id).update(
                status_reason=f"deleting: {error}; trying again shortly"[:2000],
                heartbeat_at=None,
                updated_at=timezone.now(),
            )
            return "retry"
    deleted, _ = Server.objects.filter(id=server.id, claim_id=claim_id).delete()
    if not deleted:
        return "lost claim"
    audit.record(
        AuditAction.SERVER_DELETED,
        workspace=server.workspace,
        server=str(server.id),
        name=server.name,
        kind=server.kind,
        dropped=dropped,
    )
    return "deleted"


@transaction.atomic
def reap_deletions(now: datetime | None = None) -> int:
    """Deletions whose worker went away or that could not finish: queued again."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.SERVER_STALE_SECONDS)
    pending = Server.objects.filter(status=Server.Status.DELETING).filter(
        Q(heartbeat_at__lt=stale) | Q(heartbeat_at__isnull=True, updated_at__lt=stale)
    )
    count = 0
    for server in pending.select_for_update(skip_locked=True).only("id"):
        # The stale claim is released, so the queued run can take it at once.
        Server.objects.filter(id=server.id).update(claim_id=None, heartbeat_at=None, updated_at=now)
        _enqueue_deletion(server)
        count += 1
    return count
