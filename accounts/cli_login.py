"""CLI login requests: a CLI asks, a signed-in user approves in the browser, the CLI polls.

Two front doors share these functions: the Prisma 1 CLI's `requestCloudToken` /
`cloudTokenRequest` with `/cli-auth?secret=`, and an RFC 8628 device flow (REST start and poll,
`/device` with a user code). A request lives 10 minutes, is decided once, and hands its key out
once.
"""

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
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
# It polls `cloudTokenRequest`, sleeps a second after each answer, and cannot be told to slow
# down (protocol reference 3.1, step 5).
PRISMA_CLI_POLL_SECONDS = 1
# A CLI that misses this many polls in a row (plus a grace for a slow network or server) has
# given up (killed, Ctrl-C, an error): nobody would receive a key minted for it, so the request
# can no longer be approved.
MISSED_POLLS_BEFORE_GONE = 3
GONE_GRACE_SECONDS = 2
# A held poll must end this long before the waiting Redis client's socket timeout would.
HOLD_MARGIN_SECONDS = 1.0

log = logging.getLogger(__name__)


class LoginRequestError(Exception):
    """The request cannot be decided; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str, retry_after: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


def new_user_code() -> str:
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalize_user_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalpha())[:20]


def format_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _start_limit() -> tuple[int, timedelta]:
    """`CLI_LOGIN_START_RATE` ("20/min") as a count and a window."""
    count, _, period = settings.CLI_LOGIN_START_RATE.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1] or "m"]
    return int(count), timedelta(seconds=seconds)


def start(
    *,
    client_name: str,
    client_host: str = "",
    client_ip: str | None = None,
    poll_interval: int | None = None,
) -> tuple[CliLoginRequest, str]:
    """Open a request. Returns it with its secret (the device code), which is never stored.

    Every start, by either front door, counts against one limit per client address, so no
    door (or GraphQL alias) opens more requests than `CLI_LOGIN_START_RATE` allows.
    """
    limit, window = _start_limit()
    counter = f"cli-login-start:{client_ip or 'unknown'}"
    verdict = throttle.check_counter(counter, limit, window)
    if not verdict.allowed:
        raise LoginRequestError(
            "too_many_requests",
            f"Too many login requests from this address. Try again in {verdict.retry_after}"
            " seconds.",
            retry_after=verdict.retry_after,
        )
    throttle.count(counter, window)
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
        poll_interval=poll_interval or settings.CLI_LOGIN_POLL_INTERVAL,
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


def silence_allowed(login: CliLoginRequest) -> timedelta:
    """How long a waiting CLI may go without polling: `MISSED_POLLS_BEFORE_GONE` of its polls,
    each `poll_interval` apart plus the time a held poll keeps it waiting for an answer, and a
    grace. For the Prisma CLI (1 s cadence, 2 s hold) that is 11 s; for the device flow (5 s
    interval, never held) 17 s."""
    held = hold_seconds() if login.client_name == PRISMA_CLI_NAME else 0
    cycle = login.poll_interval + held
    return timedelta(seconds=MISSED_POLLS_BEFORE_GONE * cycle + GONE_GRACE_SECONDS)


def client_is_waiting(login: CliLoginRequest, now: datetime | None = None) -> bool:
    """Is the CLI that asked still polling for its answer? Its last poll (or, before the first,
    the start) must be within `silence_allowed`."""
    last_seen = login.last_polled_at or login.created_at
    return (now or timezone.now()) - last_seen <= silence_allowed(login)


@transaction.atomic
def approve(login: CliLoginRequest, user: User, *, request: HttpRequest | None = None) -> None:
    """Bind the request to `user` and mint its key; the CLI picks it up on its next poll."""
    if not user.is_verified:  # a key would outlive the real owner's password reset
        raise LoginRequestError(
            "email_unverified",
            "Verify your email address before you authorize a CLI: follow the link we emailed"
            " you, or send a new one from the banner at the top of the page.",
        )
    login = _claim_pending(login.pk)
    if not client_is_waiting(login):
        # Minting a key nobody will pick up, and saying "authorized", would both be lies.
        raise LoginRequestError(
            "client_gone",
            "The command-line tool is no longer waiting for this login (it stopped polling)."
            " Nothing was authorized. Run the login command again.",
        )
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


def revoke_uncollected(now: datetime | None = None) -> int:
    """Revoke the keys of approved logins whose CLI stopped polling before it collected them
    (killed between the click on Authorize and its next poll): nobody holds such a key, so it
    must not stay valid for 30 days. Returns how many were revoked; idempotent (beat runs it)."""
    now = now or timezone.now()
    revoked = 0
    approved = CliLoginRequest.objects.filter(
        status=CliLoginRequest.Status.APPROVED, session_key__isnull=False
    ).select_related("session_key", "session_key__user")
    for login in approved:
        if client_is_waiting(login, now):
            continue
        with transaction.atomic():
            claimed = CliLoginRequest.objects.filter(
                pk=login.pk, status=CliLoginRequest.Status.APPROVED
            ).update(status=CliLoginRequest.Status.DENIED)
            if claimed and login.session_key is not None:
                revoked += session_keys.revoke(login.session_key)
    return revoked


def _decision_key(login_id: object) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:cli-login-decided:{login_id}"


def _announce_decision(login_id: object) -> None:
    """Wake a poll that is waiting for this request (see `hold_poll`)."""
    key = _decision_key(login_id)
    pipe = throttle.client().pipeline()
    pipe.rpush(key, "1")
    pipe.expire(key, 60)
    pipe.execute()


def effective_hold(configured: float, socket_timeout: float | None) -> float:
    """The hold, kept `HOLD_MARGIN_SECONDS` under the waiting client's socket timeout: a
    blocking call that outlives its socket's timeout fails ("Timeout reading from socket")."""
    if socket_timeout is not None:
        configured = min(configured, socket_timeout - HOLD_MARGIN_SECONDS)
    return max(0.0, configured)


def hold_seconds() -> float:
    """How long a Prisma CLI poll is held (`CLI_LOGIN_HOLD_SECONDS`), read against the socket
    timeout the blocking client really has (a `socket_timeout` in REDIS_URL wins over ours)."""
    kwargs = throttle.blocking_client().connection_pool.connection_kwargs
    return effective_hold(settings.CLI_LOGIN_HOLD_SECONDS, kwargs.get("socket_timeout"))


def hold_poll(login_id: object, address: str | None) -> None:
    """Hold a pending poll until the request is decided or `hold_seconds()` pass.

    The Prisma CLI polls, then sleeps a second; answering the poll the moment the user clicks
    Authorize keeps the login fast. Holding costs a web thread, so the hold is short (a couple
    of seconds: the CLI waits forever anyway, so longer holds buy nothing but busy threads),
    and only one poll per request and `CLI_LOGIN_MAX_HOLDS_PER_ADDRESS` per client address are
    held at a time; any other poll is answered at once. Waiting is a blocking pop on a Redis
    list, so any web process can be woken by any other.
    """
    seconds = hold_seconds()
    if seconds <= 0:
        return
    r = throttle.client()
    prefix = settings.REDIS_KEY_PREFIX
    lock = f"{prefix}:cli-login-held:{login_id}"
    holds = f"{prefix}:cli-login-holds:{address or 'unknown'}"
    expiry = math.ceil(seconds) + 5
    if not r.set(lock, "1", nx=True, ex=expiry):
        return
    try:
        pipe = r.pipeline()
        pipe.incr(holds)
        pipe.expire(holds, expiry)
        held = pipe.execute()[0]
        try:
            if held <= settings.CLI_LOGIN_MAX_HOLDS_PER_ADDRESS:
                throttle.blocking_client().blpop([_decision_key(login_id)], timeout=seconds)
        finally:
            r.decr(holds)
    except redis.RedisError:
        # The poll still gets its answer (pending, or the token) from the database.
        log.warning("holding a CLI login poll failed", exc_info=True)
    finally:
        r.delete(lock)
