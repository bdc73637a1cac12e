import hashlib
import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.http import Http404
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> "User":
        if not email:
            raise ValueError("an email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        # The operator creates it at the command line: there is no mailbox to prove.
        fields.setdefault("email_verified_at", timezone.now())
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. The email address is the login; it is stored lower-cased."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254, unique=True)
    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # Set when the owner of the address followed the verification link (or a reset link):
    # until then the account may not mint keys, approve CLI logins or accept invitations.
    email_verified_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        constraints = [models.UniqueConstraint(Lower("email"), name="user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name

    def get_short_name(self) -> str:
        return self.name.split(" ")[0] if self.name else self.email

    @property
    def is_verified(self) -> bool:
        return self.email_verified_at is not None


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


# Higher ranks may do everything lower ranks may.
ROLE_RANK = {Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class WorkspaceQuerySet(models.QuerySet["Workspace"]):
    def for_user(self, user: User) -> "WorkspaceQuerySet":
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    """Everything a team owns (servers, services) belongs to a workspace.

    The slug is the workspace's public id: it appears in URLs and in sandbox endpoints.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=64)
    slug = models.SlugField(max_length=40, unique=True)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")
        ]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    def has_role(self, role: Role) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[role]


def get_membership(user: User, slug: str) -> Membership:
    """The one way to reach a workspace from a request: through the caller's membership.

    A workspace the user is not a member of is indistinguishable from one that does not exist.
    """
    if not user.is_authenticated:
        raise Http404("No such workspace")
    try:
        return Membership.objects.select_related("workspace").get(user=user, workspace__slug=slug)
    except Membership.DoesNotExist:
        raise Http404("No such workspace") from None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationQuerySet(models.QuerySet["Invitation"]):
    def pending(self) -> "InvitationQuerySet":
        return self.filter(
            accepted_at__isnull=True,
            declined_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )


class Invitation(models.Model):
    """A single-use invitation. Only the SHA-256 of its token is stored."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    declined_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.workspace}"

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.declined_at:
            return "declined"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class AuditAction(models.TextChoices):
    SIGN_UP = "user.sign_up", "Signed up"
    EMAIL_VERIFIED = "user.email_verified", "Verified email address"
    SIGN_UP_EXISTING = "user.sign_up_existing", "Someone tried to sign up with this address"
    SIGN_IN = "user.sign_in", "Signed in"
    SIGN_IN_FAILED = "user.sign_in_failed", "Failed sign-in"
    SIGN_OUT = "user.sign_out", "Signed out"
    PASSWORD_CHANGED = "user.password_changed", "Changed password"
    PASSWORD_RESET_REQUESTED = "user.password_reset_requested", "Requested a password reset"
    PASSWORD_RESET = "user.password_reset", "Reset password"
    WORKSPACE_CREATED = "workspace.created", "Created workspace"
    WORKSPACE_RENAMED = "workspace.renamed", "Renamed workspace"
    WORKSPACE_DELETED = "workspace.deleted", "Deleted workspace"
    INVITATION_SENT = "invitation.sent", "Sent invitation"
    INVITATION_ACCEPTED = "invitation.accepted", "Accepted invitation"
    INVITATION_DECLINED = "invitation.declined", "Declined invitation"
    INVITATION_REVOKED = "invitation.revoked", "Revoked invitation"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Changed a member's role"
    MEMBER_REMOVED = "member.removed", "Removed a member"
    MEMBER_LEFT = "member.left", "Left workspace"
    CLI_LOGIN_APPROVED = "cli_login.approved", "Approved a CLI login"
    CLI_LOGIN_DENIED = "cli_login.denied", "Denied a CLI login"
    SESSION_KEY_CREATED = "session_key.created", "Created a session key"
    SESSION_KEY_REVOKED = "session_key.revoked", "Revoked a session key"
    SESSION_KEYS_REVOKED = "session_key.revoked_all", "Revoked all session keys"
    SERVER_CREATED = "server.created", "Created a server"
    SERVER_STATUS_CHANGED = "server.status_changed", "Server status changed"
    SERVER_DELETE_REQUESTED = "server.delete_requested", "Asked to delete a server"
    SERVER_DELETED = "server.deleted", "Deleted a server"
    SERVER_KEY_ROTATION_STARTED = "server.key_rotation_started", "Started a server key rotation"
    SERVER_KEY_ROTATED = "server.key_rotated", "Rotated a server's key pair"
    SERVER_KEY_ROTATION_CANCELLED = "server.key_rotation_cancelled", "Cancelled a key rotation"
    SERVICE_CREATED = "service.created", "Created a service"
    SERVICE_DELETED = "service.deleted", "Deleted a service"
    SERVICE_TOKEN_ISSUED = "service.token_issued", "Issued a service token"
    DEPLOY_REQUESTED = "deploy.requested", "Requested a deploy"
    DEPLOY_CANCELLED = "deploy.cancelled", "Cancelled a deploy"
    DATA_ROW_CREATED = "data.row_created", "Created a row in the data browser"
    DATA_ROW_UPDATED = "data.row_updated", "Edited a row in the data browser"
    DATA_ROW_DELETED = "data.row_deleted", "Deleted a row in the data browser"


AUTH_ACTIONS = [
    AuditAction.EMAIL_VERIFIED,
    AuditAction.SIGN_IN,
    AuditAction.SIGN_IN_FAILED,
    AuditAction.SIGN_OUT,
    AuditAction.PASSWORD_CHANGED,
    AuditAction.PASSWORD_RESET,
    AuditAction.CLI_LOGIN_APPROVED,
    AuditAction.CLI_LOGIN_DENIED,
    AuditAction.SESSION_KEY_CREATED,
    AuditAction.SESSION_KEY_REVOKED,
    AuditAction.SESSION_KEYS_REVOKED,
]


class AuditEvent(models.Model):
    """One line of the audit trail.

    `user` is the account the event is about (the one signing in, the member removed);
    `actor` is who did it, when that is someone else or known. Events of a workspace carry it;
    account events (sign-in and the like) have no workspace and appear in the trail of every
    workspace the account belongs to.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    action = models.CharField(max_length=40, choices=AuditAction.choices)
    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    email = models.EmailField(max_length=254, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(fields=["user", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.created_at:%Y-%m-%d %H:%M})"


class SessionKeyQuerySet(models.QuerySet["SessionKey"]):
    def live(self) -> "SessionKeyQuerySet":
        """The one definition of a live key: not revoked and not expired (see `is_live`)."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class SessionKey(models.Model):
    """A CLI session key (the Prisma CLI's `cloudSessionKey`) or an API key for CI.

    The key itself is a JWT the console signs; only its `jti` is stored, so a database leak
    yields no usable key, and revoking the row kills the key on its next use.
    """

    class Origin(models.TextChoices):
        CLI_LOGIN = "cli_login", "CLI login"
        CONSOLE = "console", "Created in the console"
        API = "api", "Created through the API"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="session_keys"
    )
    jti = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    origin = models.CharField(max_length=16, choices=Origin.choices)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = SessionKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.user})"

    @property
    def is_live(self) -> bool:
        """The row-level twin of `SessionKey.objects.live()`: keep the two identical."""
        return self.revoked_at is None and self.expires_at > timezone.now()


class CliLoginRequest(models.Model):
    """A CLI asking to be signed in, approved in a browser by a signed-in user.

    Serves both the Prisma CLI's flow (`requestCloudToken` / `/cli-auth?secret=`) and an RFC
    8628 device flow (`/device` and a user code). Only the hash of the secret is stored.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        DENIED = "denied"
        DELIVERED = "delivered"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True)
    user_code = models.CharField(max_length=8, db_index=True)
    client_name = models.CharField(max_length=100)
    client_host = models.CharField(max_length=200, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    session_key = models.OneToOneField(
        SessionKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="login_request"
    )
    last_polled_at = models.DateTimeField(null=True, blank=True)
    poll_interval = models.PositiveSmallIntegerField(default=5)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client_name} on {self.client_host or 'unknown host'} ({self.status})"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()
