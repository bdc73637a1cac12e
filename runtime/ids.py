"""Collision-resistant ids in the cuid format Prisma uses (25 characters, starting with `c`)."""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import time

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_counter = itertools.count(secrets.randbelow(36**4))
_fingerprint = None
_clock = (0, "")  # the last millisecond seen and its eight digits
# The random block makes ids hard to collide, not secret (time and counter are plain). Its digits
# come from the OS in bulk: a draw of random bytes, each byte under 252 mapped to one of the 36
# digits (7 bytes per digit, so every digit is as likely) and the rest dropped, serves about a
# thousand ids. A forked process draws anew, so parent and child never share digits, and takes
# its own fingerprint (it holds the process id).
_DIGIT_OF_BYTE = bytes(ord(_BASE36[b % 36]) for b in range(256))
_UNEVEN = bytes(range(252, 256))
_DRAW_BYTES = 8192
_digits = ""  # the current draw
_taken = 0  # digits of it used


def _after_fork() -> None:
    global _digits, _taken, _fingerprint
    _digits, _taken, _fingerprint = "", 0, None


os.register_at_fork(after_in_child=_after_fork)


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
    global _clock, _digits, _taken
    millis = int(time.time() * 1000)
    if _clock[0] != millis:
        _clock = (millis, _base36(millis, 8))
    count = next(_counter) % 1679616  # 36 ** 4
    at = _taken
    if at + 8 > len(_digits):
        _digits = os.urandom(_DRAW_BYTES).translate(_DIGIT_OF_BYTE, _UNEVEN).decode("ascii")
        at = 0
    _taken = at + 8
    return (
        "c"
        + _clock[1]
        + _PAIRS[count // 1296]
        + _PAIRS[count % 1296]
        + (_fingerprint or _host_fingerprint())
        + _digits[at : at + 8]
    )
