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
# The random block makes ids hard to collide, not secret (time and counter are plain), so a fast
# generator seeded from the OS serves it; a forked process reseeds.
_random = random.Random(secrets.randbits(128))  # noqa: S311 - not a secret
os.register_at_fork(after_in_child=lambda: _random.seed(secrets.randbits(128)))


_PAIRS = [a + b for a in _BASE36 for b in _BASE36]  # two digits at a time


def _base36(number: int, width: int) -> str:
    """The last `width` (even) base-36 digits of `number`."""
    pairs = []
    for _ in range(width // 2):
        number, rest = divmod(number, 1296)
        pairs.append(_PAIRS[rest])
    return "".join(reversed(pairs))


def _host_fingerprint() -> str:
    global _fingerprint
    if _fingerprint is None:
        host = sum(socket.gethostname().encode()) + 36
        _fingerprint = _base36(os.getpid(), 2) + _base36(host, 2)
    return _fingerprint


def cuid() -> str:
    """`c` + time (8) + counter (4) + fingerprint (4) + random (8): sortable by creation time."""
    return (
        "c"
        + _base36(int(time.time() * 1000), 8)
        + _base36(next(_counter) % 36**4, 4)
        + _host_fingerprint()
        + _base36(_random.getrandbits(41), 8)
    )
