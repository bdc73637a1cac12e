"""Sign-in throttling, per account and per client address, shared through Redis.

Failures are kept for an hour in a sorted set per key. After a few failures each new attempt
must wait an exponentially growing (capped) delay since the last failure: a soft back-off that
slows guessing without letting an attacker lock the owner out for long. Past the hourly ceiling
attempts are refused until the oldest failure ages out.
"""

import hashlib
import math
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import redis
from django.conf import settings

WINDOW_SECONDS = 3600


# The socket timeout of the client that makes blocking calls (BLPOP). Holds are kept at least
# a second under it (`cli_login.hold_seconds`), so a blocking call never times out its socket.
BLOCKING_SOCKET_TIMEOUT = 10.0


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


@cache
def blocking_client() -> redis.Redis:
    """A client of its own for blocking calls, with a socket timeout meant for them; a
    `socket_timeout` given in REDIS_URL still wins, and the holds are computed from it."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=BLOCKING_SOCKET_TIMEOUT)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def _key(kind: str, value: str) -> str:
    digest = hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]
    return f"{settings.REDIS_KEY_PREFIX}:signin:{kind}:{digest}"


def _verdict(key: str, backoff_after: int, ceiling: int, now: float) -> Verdict:
    r = client()
    r.zremrangebyscore(key, 0, now - WINDOW_SECONDS)
    failures = r.zcard(key)
    if failures == 0:
        return Verdict(True)
    if failures >= ceiling:
        oldest = r.zrange(key, 0, 0, withscores=True)[0][1]
        return Verdict(False, max(1, math.ceil(oldest + WINDOW_SECONDS - now)))
    over = failures - backoff_after
    if over < 0:
        return Verdict(True)
    delay = min(2**over, settings.SIGN_IN_MAX_BACKOFF_SECONDS)
    latest = r.zrange(key, -1, -1, withscores=True)[0][1]
    wait = latest + delay - now
    return Verdict(True) if wait <= 0 else Verdict(False, max(1, math.ceil(wait)))


def check(email: str, address: str | None) -> Verdict:
    """May this attempt go ahead? The stricter of the account and address verdicts wins."""
    now = time.time()
    verdicts = [
        _verdict(
            _key("account", email),
            settings.SIGN_IN_BACKOFF_AFTER,
            settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT,
            now,
        )
    ]
    if address:
        # Many people can share one address (an office, a NAT): back off later there.
        verdicts.append(
            _verdict(
                _key("address", address),
                settings.SIGN_IN_ADDRESS_BACKOFF_AFTER,
                settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS,
                now,
            )
        )
    refused = [v for v in verdicts if not v.allowed]
    if refused:
        return Verdict(False, max(v.retry_after for v in refused))
    return Verdict(True)


def record_failure(email: str, address: str | None) -> None:
    now = time.time()
    pipe = client().pipeline()
    keys = [_key("account", email)] + ([_key("address", address)] if address else [])
    for key in keys:
        # A random suffix keeps two failures in the same microsecond as two members.
        pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
        pipe.expire(key, WINDOW_SECONDS)
    pipe.execute()


def record_success(email: str) -> None:
    """A correct password clears the account's failures (not the address's)."""
    client().delete(_key("account", email))


# A plain sliding-window counter for other limits (wrong device codes, ...). ---------------


def _counter_key(name: str) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:counter:{name}"


def count(name: str, window: timedelta) -> None:
    now = time.time()
    key = _counter_key(name)
    pipe = client().pipeline()
    pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
    pipe.expire(key, math.ceil(window.total_seconds()))
    pipe.execute()


def check_counter(name: str, limit: int, window: timedelta) -> Verdict:
    now = time.time()
    seconds = window.total_seconds()
    key = _counter_key(name)
    r = client()
    r.zremrangebyscore(key, 0, now - seconds)
    if r.zcard(key) < limit:
        return Verdict(True)
    oldest = r.zrange(key, 0, 0, withscores=True)[0][1]
    return Verdict(False, max(1, math.ceil(oldest + seconds - now)))
