"""Servers: a workspace's sandbox on a region, its private servers and self-hosted ones.

Every lookup from a request goes through `Server.objects.for_user` or `get_server`: a server
of a workspace the user is not a member of does not exist for them (404).
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from accounts.models import User, Workspace, get_membership
from cloud import crypto
from servers import clusters


def validate_origin(value: str) -> None:
    """An endpoint is an origin: `http(s)://host[:port]`, no path, query, fragment or password."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValidationError("Enter an origin such as https://prisma.example.com:4466.") from None
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.path not in {""}
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or value != value.strip()
    ):
        raise ValidationError(
            "Enter an origin such as https://prisma.example.com:4466 (no path, query or"
            " credentials)."
        )


class ServerQuerySet(models.QuerySet["Server"]):
    def for_user(self, user: User) -> ServerQuerySet:
        """Servers of the workspaces the user belongs to: the only way requests reach them."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(workspace__memberships__user=user)


class Server(models.Model):
    class Kind(models.TextChoices):
        SANDBOX = "sandbox", "Sandbox"
        PRIVATE = "private", "Private"
        SELF_HOSTED = "self_hosted", "Self-hosted"

    class Status(models.TextChoices):
        PROVISIONING = "provisioning", "Provisioning"
        HEALTHY = "healthy", "Healthy"
        UNREACHABLE = "unreachable", "Unreachable"
        FAILED = "failed", "Failed"
        DELETING = "deleting", "Deleting"

    # Which moves `transition` allows; a claimed provisioning run ends healthy or failed, a
    # failed sandbox may be provisioned again, a periodic check moves healthy and unreachable.
    TRANSITIONS: dict[str, set[str]] = {
        Status.PROVISIONING: {Status.HEALTHY, Status.FAILED, Status.DELETING},
        Status.HEALTHY: {Status.UNREACHABLE, Status.DELETING},
        Status.UNREACHABLE: {Status.HEALTHY, Status.FAILED, Status.DELETING},
        Status.FAILED: {Status.PROVISIONING, Status.DELETING},
        Status.DELETING: set(),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="servers")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.SlugField(max_length=40)
    endpoint = models.CharField(max_length=200, validators=[validate_origin])
    region = models.CharField(max_length=40, blank=True)  # sandboxes: a SANDBOX_REGIONS name
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROVISIONING)
    status_reason = models.TextField(blank=True)
    version = models.CharField(max_length=40, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Credentials: the public half is what the server is configured with; the private half and
    # a management secret are Fernet tokens (cloud.crypto), never plaintext.
    public_key_pem = models.TextField(blank=True)
    private_key = crypto.EncryptedTextField(blank=True)
    management_secret = crypto.EncryptedTextField(blank=True)
    # The provisioning run: who holds it (claim), when it last showed life (heartbeat), and
    # how many times a worker claimed it (the reaper gives up after SERVER_PROVISION_ATTEMPTS).
    claim_id = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="server_name_unique"),
            models.UniqueConstraint(
                fields=["workspace", "region"],
                condition=Q(kind="sandbox"),
                name="one_sandbox_per_region",
            ),
            models.CheckConstraint(
                condition=~Q(kind="sandbox") | ~Q(region=""), name="sandbox_has_region"
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}) in {self.workspace}"

    def clean(self) -> None:
        # The Prisma CLI treats a cluster named prisma-eu1/us1 as shared (servers.clusters):
        # it would send a private server's projects and URLs the sandbox way.
        if self.kind != self.Kind.SANDBOX and clusters.is_shared_name(self.name):
            message = f"“{self.name}” is the Prisma CLI's name for a sandbox region."
            raise ValidationError({"name": message + " Choose another name."})

    @property
    def private_key_pem(self) -> str:
        return crypto.decrypt(self.private_key) if self.private_key else ""

    def set_private_key(self, pem: str) -> None:
        self.private_key = crypto.encrypt(pem)

    @property
    def management_secret_value(self) -> str:
        return crypto.decrypt(self.management_secret) if self.management_secret else ""

    def set_management_secret(self, secret: str) -> None:
        self.management_secret = crypto.encrypt(secret)

    @property
    def service_origin(self) -> str:
        """Where its services live: a sandbox is the workspace's slice of its region."""
        if self.kind == self.Kind.SANDBOX:
            return f"{self.endpoint}/{self.workspace.slug}"
        return self.endpoint

    def project_name(self, service: str) -> str:
        """The project name on the server: `<workspace>~<service>` on a sandbox."""
        if self.kind == self.Kind.SANDBOX:
            return f"{self.workspace.slug}~{service}"
        return service

    def can_move_to(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.Status(self.status)]


def get_server(user: User, workspace_slug: str, server_id: uuid.UUID | str) -> Server:
    """A server of one of the user's workspaces, or 404 (as for a server that does not exist)."""
    membership = get_membership(user, workspace_slug)
    try:
        return Server.objects.select_related("workspace").get(
            workspace=membership.workspace, id=server_id
        )
    except (Server.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such server") from None


# Prisma's name rules (deploy/validation/NameConstraints.scala), as the runtime applies them.
# The console adds the workspace prefix itself, so a service name here has no `~`.
SERVICE_NAME_RE = r"^[a-zA-Z][a-zA-Z0-9\-_]*$"
STAGE_NAME_RE = r"^[a-zA-Z][a-zA-Z0-9\-_]*$"
RESERVED_NAMES = frozenset({"cluster", "management", "export", "import"})
MAX_STAGE_LENGTH = 30
MAX_SCHEMA_NAME_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1: the schema is `<project>$<stage>`


class Origin(models.TextChoices):
    """Where a service or a deploy came from."""

    CONSOLE = "console", "Console"
    API = "api", "API"
    CLI = "cli", "Prisma CLI"
    SERVER = "server", "Found on the server"


class ServiceQuerySet(models.QuerySet["Service"]):
    def for_user(self, user: User) -> ServiceQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(server__workspace__memberships__user=user)


class Service(models.Model):
    """A Prisma service (`name/stage`) on a server; its project on the server is
    `server.project_name(name)`, its endpoint `<server.service_origin>/<name>/<stage>`."""

    class Status(models.TextChoices):
        NEW = "new", "Not deployed yet"
        LIVE = "live", "Live"
        DELETING = "deleting", "Deleting"
        DELETE_FAILED = "delete_failed", "Delete failed"

    Origin = Origin

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=63)
    stage = models.CharField(max_length=MAX_STAGE_LENGTH)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    status_reason = models.TextField(blank=True)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.CONSOLE)
    # The service secret (`secret` of prisma.yml): signs service tokens; encrypted at rest.
    secret = crypto.EncryptedTextField(blank=True)
    # The datamodel and revision the server last reported applied (the truth, not a hope).
    datamodel = models.TextField(blank=True)
    revision = models.PositiveIntegerField(null=True, blank=True)
    starter = models.CharField(max_length=32, blank=True)
    # What the service stores, as the server measured it in the last periodic check (our
    # runtime's `Project.storageBytes`; None for a server that does not report it).
    storage_bytes = models.BigIntegerField(null=True, blank=True)
    storage_measured_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Deleting runs in a task like a deploy: claim, heartbeat, attempts.
    claim_id = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    objects = ServiceQuerySet.as_manager()

    class Meta:
        ordering = ["name", "stage"]
        constraints = [
            models.UniqueConstraint(fields=["server", "name", "stage"], name="service_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name}/{self.stage} on {self.server.name}"

    @property
    def project(self) -> str:
        return self.server.project_name(self.name)

    @property
    def endpoint(self) -> str:
        return f"{self.server.service_origin}/{self.name}/{self.stage}"

    @property
    def secret_value(self) -> str:
        return crypto.decrypt(self.secret) if self.secret else ""

    def set_secret(self, value: str) -> None:
        self.secret = crypto.encrypt(value) if value else ""


def get_service(user: User, workspace_slug: str, service_id: uuid.UUID | str) -> Service:
    """A service of one of the user's workspaces, or 404."""
    membership = get_membership(user, workspace_slug)
    try:
        return Service.objects.select_related("server", "server__workspace").get(
            server__workspace=membership.workspace, id=service_id
        )
    except (Service.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such service") from None


class Deploy(models.Model):
    """One deploy of a datamodel to a service, run by a worker (DESIGN invariant 5)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    Source = Origin

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="deploys")
    datamodel = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dry_run = models.BooleanField(default=False)
    force = models.BooleanField(default=False)
    # "Redeploy this revision": the deploy whose datamodel this one brings back.
    redeploy_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    reason = models.TextField(blank=True)  # why it failed or was cancelled, in words
    # What the server answered: revision (None when nothing changed or not applied), the
    # steps, and its errors and warnings as `{type, field, description}` lists.
    revision = models.PositiveIntegerField(null=True, blank=True)
    steps = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    # The server's own account of the migration (migrationStatus / listMigrations).
    migration_status = models.CharField(max_length=24, blank=True)
    applied = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The run: task id, who holds it (claim), when it last showed life, how often claimed.
    task_id = models.CharField(max_length=64, blank=True)
    claim_id = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)  # last change on the server
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["service", "status"]),
            models.Index(fields=["status", "heartbeat_at"]),
        ]

    def __str__(self) -> str:
        return f"deploy {self.id} of {self.service} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


def get_deploy(user: User, workspace_slug: str, deploy_id: uuid.UUID | str) -> Deploy:
    """A deploy of a service of one of the user's workspaces, or 404."""
    membership = get_membership(user, workspace_slug)
    try:
        return Deploy.objects.select_related("service__server__workspace", "requested_by").get(
            service__server__workspace=membership.workspace, id=deploy_id
        )
    except (Deploy.DoesNotExist, ValidationError, ValueError):
        raise Http404("No such deploy") from None
