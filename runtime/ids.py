"""Collision-resistant ids in the cuid format Prisma uses (25 characters, starting with `c`)."""

from __future__ import annotations

import itertools
import os
import random
import secrets
import socket
import time

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_counter = itertools.count(secrets.randbelow(36**4))
_fingerprint = None
_clock = (0, "")  # the last millisecond seen and its eight digits
# The random block makes ids hard to collide, not secret (time and counter are plain), so a fast
# generator seeded from the OS serves it; a forked process reseeds.
_random = random.Random(secrets.randbits(128))  # noqa: S311 - not a secret
os.register_at_fork(after_in_child=lambda: _random.seed(secrets.randbits(128)))


_PAIRS = [a + b for a in _BASE36 for b in _BASE36]  # two digits at a time


def _base36(number: int, width: int) -> str:
    """The last `width` (2, 4 or 8) base-36 digits of `number`; unrolled, as ids are hot."""
    rest, d = divmod(number, 1296)
    if width == 2:
        return _PAIRS[d]
    rest, c = divmod(rest, 1296)
    if width == 4:
        return _PAIRS[c] + _PAIRS[d]
    rest, b = divmod(rest, 1296)
    return _PAIRS[rest % 1296] + _PAIRS[b] + _PAIRS[c] + _PAIRS[d]


def _host_fingerprint() -> str:
    global _fingerprint
    if _fingerprint is None:
        host = sum(socket.gethostname().encode()) + 36
        _fingerprint = _base36(os.getpid(), 2) + _base36(host, 2)
    return _fingerprint


def cuid() -> str:
    """`c` + time (8) + counter (4) + fingerprint (4) + random (8): sortable by creation time."""
    global _clock
    millis = int(time.time() * 1000)
    if _clock[0] != millis:
        _clock = (millis, _base36(millis, 8))
    return (
        "c"
        + _clock[1]
        + _base36(next(_counter), 4)
        + _host_fingerprint()
        + _base36(_random.getrandbits(41), 8)
    )
