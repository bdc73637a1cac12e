"""CLI login requests: a CLI asks, a signed-in user approves in the browser, the CLI polls.

Two front doors share these functions: the Prisma 1 CLI's `requestCloudToken` /
`cloudTokenRequest` with `/cli-auth?secret=`, and an RFC 8628 device flow (REST start and poll,
`/device` with a user code). A request lives 10 minutes, is decided once, and hands its key out
once.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit, session_keys, throttle
from accounts.models import AuditAction, CliLoginRequest, SessionKey, User, hash_token

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels: no words, no 0/O or 1/I confusion
USER_CODE_LENGTH = 8
SLOW_DOWN_STEP = 5
# The Prisma 1 CLI prints no user code, so its approval page cannot ask to compare one.
PRISMA_CLI_NAME = "Prisma 1 CLI"


class LoginRequestError(Exception):
    """The request cannot be decided; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalize_user_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalpha())[:20]


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def start(
    *, client_name: str, client_host: str = "", client_ip: str | None = None
) -> tuple[CliLoginRequest, str]:
    """Open a request. Returns it with its secret (the device code), which is never stored."""
    secret = secrets.token_urlsafe(32)  # 256 bits
    now = timezone.now()
    login = CliLoginRequest.objects.create(
        secret_hash=hash_token(secret),
        user_code=new_user_code(),
        client_name=client_name[:100] or "CLI",
        client_host=client_host[:200],
        client_ip=client_ip,
        created_at=now,
        expires_at=now + settings.CLI_LOGIN_TTL,
        poll_interval=settings.CLI_LOGIN_POLL_INTERVAL,
    )
    return login, secret


def find_by_secret(secret: str) -> CliLoginRequest | None:
    if not secret or len(secret) > 200:
        return None
    return CliLoginRequest.objects.filter(secret_hash=hash_token(secret)).first()


def find_by_user_code(user: User, text: str) -> CliLoginRequest:
    """The pending request with this user code; at most 5 wrong codes per user and window."""
    key = f"device:{user.pk}"
    verdict = throttle.check_counter(
        key, settings.CLI_LOGIN_MAX_WRONG_CODES, settings.CLI_LOGIN_TTL
    )
    if not verdict.allowed:
        raise LoginRequestError(
            "too_many_attempts",
            f"Too many wrong codes. Try again in {verdict.retry_after} seconds.",
        )
    code = normalize_user_code(text)
    login = (
        CliLoginRequest.objects.filter(
            user_code=code,
            status=CliLoginRequest.Status.PENDING,
            expires_at__gt=timezone.now(),
        ).first()
        if len(code) == USER_CODE_LENGTH
        else None
    )
    if login is None:
        throttle.count(key, settings.CLI_LOGIN_TTL)
        raise LoginRequestError(
            "invalid_code", "That code does not match a pending login. Check it and try again."
        )
    return login


def _claim_pending(login_id: object) -> CliLoginRequest:
    login = CliLoginRequest.objects.select_for_update().get(pk=login_id)
    if login.status != CliLoginRequest.Status.PENDING:
        raise LoginRequestError("already_decided", "This login request was already used.")
    if login.is_expired:
        raise LoginRequestError("expired", "This login request has expired. Log in again.")
    return login


@transaction.atomic
def approve(login: CliLoginRequest, user: User, *, request: HttpRequest | None = None) -> None:
    """Bind the request to `user` and mint its key; the CLI picks it up on its next poll."""
    login = _claim_pending(login.pk)
    if login.client_host:
        where = f" on {login.client_host}"
    elif login.client_ip:
        where = f" from {login.client_ip}"
    else:
        where = ""
    key, _ = session_keys.issue(
        user, name=f"{login.client_name}{where}", origin=SessionKey.Origin.CLI_LOGIN,
        request=request,
    )  # fmt: skip
    login.status = CliLoginRequest.Status.APPROVED
    login.decided_at = timezone.now()
    login.decided_by = user
    login.session_key = key
    login.save(update_fields=["status", "decided_at", "decided_by", "session_key"])
    transaction.on_commit(lambda: _announce_decision(login.pk))
    audit.record(
        AuditAction.CLI_LOGIN_APPROVED, request=request, user=user,
        client=login.client_name, host=login.client_host, user_code=login.user_code,
    )  # fmt: skip


@transaction.atomic
def deny(login: CliLoginRequest, user: User, *, request: HttpRequest | None = None) -> None:
    login = _claim_pending(login.pk)
    login.status = CliLoginRequest.Status.DENIED
    login.decided_at = timezone.now()
    login.decided_by = user
    login.save(update_fields=["status", "decided_at", "decided_by"])
    transaction.on_commit(lambda: _announce_decision(login.pk))
    audit.record(
        AuditAction.CLI_LOGIN_DENIED, request=request, user=user,
        client=login.client_name, host=login.client_host, user_code=login.user_code,
    )  # fmt: skip


@dataclass(frozen=True)
class PollResult:
    """`token` is set exactly once: on the first poll after approval."""

    status: str  # authorization_pending | slow_down | access_denied | expired_token | ...
    token: str | None = None
    interval: int = 0
    login_id: object = None


@transaction.atomic
def poll(secret: str, *, enforce_interval: bool) -> PollResult:
    """What a polling CLI gets. The Prisma CLI polls every second and cannot slow down, so
    only the device flow (`enforce_interval`) answers `slow_down`."""
    found = find_by_secret(secret)
    if found is None:
        return PollResult("invalid_grant")
    login = CliLoginRequest.objects.select_for_update().get(pk=found.pk)
    now = timezone.now()
    if login.status == CliLoginRequest.Status.DELIVERED:
        return PollResult("invalid_grant")
    if login.status == CliLoginRequest.Status.DENIED:
        return PollResult("access_denied")
    if login.is_expired and login.status == CliLoginRequest.Status.PENDING:
        return PollResult("expired_token")
    if login.status == CliLoginRequest.Status.APPROVED:
        login.status = CliLoginRequest.Status.DELIVERED
        login.last_polled_at = now
        login.save(update_fields=["status", "last_polled_at"])
        key = login.session_key
        if key is None or not key.is_live:  # revoked before the CLI picked it up
            return PollResult("access_denied")
        return PollResult("approved", token=session_keys.token_for(key))
    too_soon = (
        enforce_interval
        and login.last_polled_at is not None
        and now - login.last_polled_at < timedelta(seconds=login.poll_interval)
    )
    login.last_polled_at = now
    if too_soon:
        login.poll_interval += SLOW_DOWN_STEP
        login.save(update_fields=["last_polled_at", "poll_interval"])
        return PollResult("slow_down", interval=login.poll_interval)
    login.save(update_fields=["last_polled_at"])
    return PollResult("authorization_pending", interval=login.poll_interval, login_id=login.pk)


def _decision_key(login_id: object) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:cli-login-decided:{login_id}"


def _announce_decision(login_id: object) -> None:
    """Wake a poll that is waiting for this request (see `wait_for_decision`)."""
    key = _decision_key(login_id)
    pipe = throttle.client().pipeline()
    pipe.rpush(key, "1")
    pipe.expire(key, 60)
    pipe.execute()


def wait_for_decision(login_id: object, seconds: float) -> None:
    """Hold a poll until the request is decided or `seconds` pass.

    The Prisma CLI polls, then sleeps a second, even after its last poll; answering the poll
    the moment the user clicks Authorize is what keeps the login under a second and a half.
    Waiting is a blocking pop on a Redis list, so any web process can be woken by any other.
    """
    throttle.client().blpop([_decision_key(login_id)], timeout=seconds)
