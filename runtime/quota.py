"""The storage cap of a sandbox service (100 MB by default), measured from PostgreSQL.

A service's data is its schema `service$stage` (reference section 7). Its size is what Prisma's
`DatabaseSizeReporter` measured: the sum of `pg_total_relation_size` of its tables, which counts
the heap, the indexes and the TOAST data. That measure costs a catalog lookup and a few file
stats, so it can run before writes; it is cached per service for `max_age` seconds, and writes
made through this process mark the cache stale so the next check sees their growth.

Deleting rows does not shrink PostgreSQL's files: the space becomes reusable after a vacuum, but
the files keep their size until a `VACUUM FULL`. So when the files are over the cap, the check
measures what the service really holds before refusing: the bytes of its live rows (TOAST
included, by `pg_column_size` of each stored value) plus its indexes. That scan only happens for a
service at or over the cap, whose writes are refused anyway, and a delete that brings the live
data back under the cap lets writes through at once. (Freed space is reused by the same
table's later writes, so counting live rows is fair; it lets one table grow into space another
table freed, which bounds the disk a service uses at about twice the cap in the worst case.)

Prisma has no code of its own for this: the open-source server never enforced the cap. The
refusal uses code 1003, Prisma's "read-only mode" error for a project that may not mutate, with
a message that says why and what still works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import Connection, errors, sql
from psycopg.rows import tuple_row

from runtime.errors import PrismaError

if TYPE_CHECKING:
    from runtime.config import SandboxLimits

STORAGE_LIMIT_CODE = 1003
DEFAULT_CAP_BYTES = 100 * 1024 * 1024
# A write of n request bytes is assumed to grow the tables by at most this many times n (row
# headers, indexes, list tables); until the estimate could reach the cap, the cached measure
# holds and sustained writes cost no extra query.
WRITE_GROWTH_FACTOR = 4
# Each row also costs its header (23 bytes, aligned to 24) and a 4-byte line pointer.
ROW_OVERHEAD_BYTES = 28

_FILES = """
SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'm')
"""

_TABLES = """
SELECT c.relname, pg_indexes_size(c.oid), array(
  SELECT a.attname::text FROM pg_attribute a
  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = 'r'
"""


@dataclass(frozen=True)
class StorageUsage:
    """How much a service stores against its cap. `live` says the bytes are those of live rows
    (measured because the files alone were over the cap)."""

    used_bytes: int
    cap_bytes: int
    live: bool = False

    @property
    def over(self) -> bool:
        return self.used_bytes >= self.cap_bytes


class StorageLimitReached(PrismaError):
    """A write to a service at its storage cap; queries and deletes still work."""

    def __init__(self, service_id: str, usage: StorageUsage) -> None:
        super().__init__(
            STORAGE_LIMIT_CODE,
            f"The service '{service_id}' has reached its storage limit of "
            f"{_size(usage.cap_bytes)} (it stores {_size(usage.used_bytes)}), so it is "
            "read-only: writes are refused until data is deleted. Queries and deletes still work.",
        )
        self.service_id = service_id
        self.usage = usage


def shrinks_only(mutation_fields: Iterable[str]) -> bool:
    """True for a mutation whose root fields are all deletes (`deleteUser`, `deleteManyUsers`):
    those must pass a service over its cap, or it could never get back under."""
    names = list(mutation_fields)
    return bool(names) and all(name.startswith("delete") for name in names)


@dataclass
class _Measure:
    usage: StorageUsage
    measured_at: float
    pending_bytes: float = 0.0


class StorageQuota:
    """The storage cap of every service of one server, with this process's cache of sizes.

    Thread-safe: the runtime runs database work in worker threads. Other processes' writes are
    only seen when the cached measure expires (`max_age`), so a service can overshoot its cap by
    what other processes write in that time, plus the write in flight when it is reached.
    """

    def __init__(
        self,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        *,
        max_age: float = 2.0,
    ) -> None:
        if cap_bytes < 0 or max_age < 0:
            raise ValueError("a storage cap and its max_age must not be negative")
        self.cap_bytes = cap_bytes
        self.max_age = max_age
        self._lock = threading.Lock()
        self._measures: dict[str, _Measure] = {}

    @classmethod
    def from_sandbox(cls, limits: SandboxLimits, *, max_age: float = 2.0) -> StorageQuota:
        """The cap a sandbox server's config (`sandbox: {storageMb}`) sets."""
        return cls(limits.storage_bytes, max_age=max_age)

    def check_write(
        self, conn: Connection, service_id: str, schema: str | None = None
    ) -> StorageUsage:
        """Refuse a write to a service at its cap with `StorageLimitReached` (code 1003).

        Call it before a mutation, `/import` or anything else that can grow the service's
        tables, not before queries or deletes (see `shrinks_only`). `schema` is where the
        service's tables live, the service id unless the server pins one schema. The refusal
        raises after plain reads only, so the caller's transaction stays usable.
        """
        usage = self.usage(conn, schema or service_id)
        if usage.over:
            raise StorageLimitReached(service_id, usage)
        return usage

    def usage(self, conn: Connection, schema: str, *, fresh: bool = False) -> StorageUsage:
        """The service's size, from this process's cache while it can be trusted."""
        if not fresh:
            cached = self.cached_usage(schema)
            if cached is not None:
                return cached
        usage = measure_usage(conn, schema, self.cap_bytes)
        with self._lock:
            self._measures[schema] = _Measure(usage, time.monotonic())
        return usage

    def cached_usage(self, schema: str) -> StorageUsage | None:
        """The service's size if this process's cache can be trusted, without any query."""
        with self._lock:
            measure = self._measures.get(schema)
        return measure.usage if measure is not None and self._trusted(measure) else None

    def record_write(self, schema: str, body_bytes: int | None = None) -> None:
        """Note a committed write. With the request's size the cached measure stays trusted
        while the estimated growth keeps it under the cap; without it, the next check
        measures again."""
        with self._lock:
            measure = self._measures.get(schema)
            if measure is None:
                return
            if body_bytes is None:
                del self._measures[schema]
            else:
                measure.pending_bytes += body_bytes * WRITE_GROWTH_FACTOR

    def record_mutation(self, schema: str, root_fields: list[str], body_bytes: int) -> None:
        """Note a committed mutation: deletes only (see `shrinks_only`) or a write of a
        request of `body_bytes`."""
        if shrinks_only(root_fields):
            self.record_delete(schema)
        else:
            self.record_write(schema, body_bytes)

    def record_delete(self, schema: str) -> None:
        """Note a committed delete, so a refused service is measured again at its next write."""
        self.forget(schema)

    def forget(self, schema: str) -> None:
        """Drop the cached measure (after a delete, a reset, or the service's removal)."""
        with self._lock:
            self._measures.pop(schema, None)

    def _trusted(self, measure: _Measure) -> bool:
        if time.monotonic() - measure.measured_at >= self.max_age:
            return False
        if measure.usage.over:
            # A refusal holds until it expires or a delete drops it: refused writes change nothing.
            return True
        return measure.usage.used_bytes + measure.pending_bytes < self.cap_bytes


def measure_usage(conn: Connection, schema: str, cap_bytes: int) -> StorageUsage:
    """The service's size: its files, or its live data when the files reach the cap."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_FILES, [schema]).fetchone()
        files = int(row[0]) if row else 0
        if files < cap_bytes:
            return StorageUsage(files, cap_bytes)
        tables = cur.execute(_TABLES, [schema]).fetchall()
        if not tables:
            return StorageUsage(files, cap_bytes)
        scans = sql.SQL(" UNION ALL ").join(
            _live_rows_bytes(schema, name, columns) for name, _, columns in tables
        )
        statement = sql.SQL("SELECT coalesce(sum(bytes), 0)::bigint FROM ({}) AS rows(bytes)")
        try:
            # A savepoint (or a transaction of its own): a table dropped by a concurrent deploy
            # must not abort the caller's transaction.
            with conn.transaction():
                row = cur.execute(statement.format(scans)).fetchone()
        except errors.UndefinedTable:
            return StorageUsage(files, cap_bytes)
        rows_bytes = int(row[0]) if row else 0
        live = rows_bytes + sum(int(index_bytes) for _, index_bytes, _ in tables)
        return StorageUsage(min(files, live), cap_bytes, live=True)


def _live_rows_bytes(schema: str, table: str, columns: list[str]) -> sql.Composed:
    """One table's live rows in bytes. Column by column, because `pg_column_size` of a stored
    value gives its size on disk (compressed, or in TOAST) without reading it back, where the
    size of a whole row would fetch and flatten every TOASTed value."""
    values = sql.SQL(" + ").join(
        sql.SQL("coalesce(pg_column_size({}), 0)").format(sql.Identifier(column))
        for column in columns
    )
    return sql.SQL("SELECT count(*) * {} + coalesce(sum({}), 0) FROM {}").format(
        sql.Literal(ROW_OVERHEAD_BYTES),
        values if columns else sql.SQL("0"),
        sql.Identifier(schema, table),
    )


def _size(value: int) -> str:
    if value >= 1024 * 1024:
        return f"{value / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    return f"{value / 1024:.1f} kB".replace(".0 kB", " kB")
