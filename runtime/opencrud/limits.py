"""What one data API request may cost, checked inside its own steps.

- The answer's size (`limits.responseBytes`, 10 MB by default on a sandbox). PostgreSQL builds
  each root field's JSON; the statement measures it (`octet_length`) and hands back the text
  only when it fits in what is left of the request's budget, else NULL and the length. So an
  answer over the limit never reaches the runtime's memory: the field fails with code 2041, the
  code Prisma's API has for a request that asks for too many nodes.
- The storage growth of a mutation on a sandbox (`runtime.quota.StorageGuard`): the writer
  adds up a bound of what its statements can add to the service's files, and the guard decides
  before COMMIT whether that bound fits the service's known room or the service must be measured
  inside the transaction (which then rolls back when over the cap).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.errors import PrismaError

RESPONSE_TOO_LARGE_CODE = 2041
# The largest text PostgreSQL can hold: a budget that never refuses.
UNLIMITED = 2**30


class StorageCheck(Protocol):
    def before_commit(self, growth_bound: int) -> Generator[Any, Any, None]:
        """Steps run inside the mutation's transaction just before COMMIT; they raise a
        `PrismaError` (code 1003) when the transaction must roll back instead."""
        ...


@dataclass
class RequestLimits:
    response_bytes: int | None = None
    storage: StorageCheck | None = None
    root_fields: int | None = None  # per operation, fragments expanded (a sandbox's `rootFields`)
    answered_bytes: int = 0

    def room(self) -> int:
        """The bytes the next field may still answer."""
        if self.response_bytes is None:
            return UNLIMITED
        return max(0, self.response_bytes - self.answered_bytes)

    def answered(self, value: str | None, size: int | None) -> bytes:
        """Account for a field's JSON text, measured by PostgreSQL (`capped`)."""
        if value is None and size is not None:
            raise response_too_large(self.answered_bytes + size, self.response_bytes or 0)
        self.answered_bytes += size or 4
        return value.encode() if value is not None else b"null"


def capped(select_json: str) -> str:
    """A statement `SELECT <json text>` as one that answers (text or NULL, its length): the
    text only when its length is at most the first parameter. `OFFSET 0` keeps PostgreSQL from
    inlining the subquery, which would build the JSON once per reference."""
    return (
        "SELECT CASE WHEN octet_length(r.j) <= %s THEN r.j END, octet_length(r.j) "  # noqa: S608
        f"FROM ({select_json} OFFSET 0) r(j)"
    )


def response_too_large(size: int, limit: int) -> PrismaError:
    return PrismaError(
        RESPONSE_TOO_LARGE_CODE,
        f"The answer to this request would be {_megabytes(size)}, more than this server's "
        f"limit of {_megabytes(limit)} per response. Ask for fewer nodes (`first`, `where`) "
        "or fewer nested relations.",
    )


def _megabytes(value: int) -> str:
    return f"{value / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
