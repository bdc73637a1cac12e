"""The storage cap of a sandbox service (100 MB by default), measured from PostgreSQL.

A service's data is its schema `service$stage` (reference section 7). Its size is what Prisma's
`DatabaseSizeReporter` measured: the sum of `pg_total_relation_size` of its tables, which counts
the heap, the indexes and the TOAST data. That measure costs a catalog lookup and a few file
stats; it is cached per service for `max_age` seconds.

Deleting rows does not shrink PostgreSQL's files: the space becomes reusable after a vacuum, but
the files keep their size until a `VACUUM FULL`. So when the files are over the cap, the check
measures what the service really holds before refusing: the bytes of its live rows (TOAST
included, by `pg_column_size` of each stored value) plus its indexes. That scan only happens for a
service whose files reached the cap, and a delete that brings the live data back under the cap
lets writes through at once. (Freed space is reused by the same table's later writes, so counting
live rows is fair; it lets one table grow into space another table freed, which bounds the disk a
service uses at about twice the cap in the worst case.)

How a write is held to the cap, so that one request cannot carry a service far past it:

1. Before it runs, a write to a service known to be at its cap is refused at once (`check_write`).
2. Inside its transaction, just before COMMIT, the mutation's writer knows a bound of what its
   statements can have added (`opencrud.writes.Writer.growth`: per row written, its values three
   times plus 1 kB for an insert or 16 kB for an update, plus 32 kB per statement).
   `StorageGuard.before_commit` lets it commit without a measure while the cached measure plus
   every bound since plus this one stays under the cap: a service far under its cap pays no
   query per mutation. Otherwise (near the cap, a stale measure, or an amplifying write such as
   `updateMany`, an upsert or nested writes over many rows) it measures inside the transaction,
   where the relation sizes include the transaction's own new pages, and rolls the request back
   with code 1003 when the service would be at or over its cap. `/import` always measures
   before its COMMIT.

The margin. A request alone never takes a service past its cap: either its bound fits under the
cap on top of every bound reserved since the last measure, or it is measured with its own writes
in and rolled back when over. What can still pass the cap, each by at most its own size:
- writes through other runtime processes within `max_age` (2 s) of this process's last measure
  (each process reserves against its own cached measure);
- writes measured at the same moment on a service whose files already reached the cap (the live
  measure does not see the other transaction's uncommitted rows; below that point the file
  sizes include every transaction's new pages, so concurrent writes see each other).
So with N processes writing to one service at once the overshoot is at most about N requests'
worth (a request is at most `limits.requestBytes`, 16 MB, and its statements are held to the
statement timeout). A rolled-back write leaves its pages in the files until vacuum; they are
reused, and the live measure does not count them.

Prisma has no code of its own for this: the open-source server never enforced the cap. The
refusal uses code 1003, Prisma's "read-only mode" error for a project that may not mutate, with
a message that says why and what still works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import Connection, errors
from psycopg.rows import tuple_row

from runtime.errors import PrismaError
from runtime.names import bind_schema, ident, in_service_schema, schema_sql
from runtime.opencrud.steps import Result, Sql, Steps

if TYPE_CHECKING:
    from runtime.config import SandboxLimits

STORAGE_LIMIT_CODE = 1003
DEFAULT_CAP_BYTES = 100 * 1024 * 1024
# Each row also costs its header (23 bytes, aligned to 24) and a 4-byte line pointer.
ROW_OVERHEAD_BYTES = 28

FILES_SQL = """
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
    """A write to a service at its storage cap; queries and deletes still work. With
    `rolled_back`, the write itself would have taken the service to `usage` and was undone."""

    def __init__(self, service_id: str, usage: StorageUsage, *, rolled_back: bool = False) -> None:
        if rolled_back:
            message = (
                f"This write would take the service '{service_id}' to "
                f"{_size(usage.used_bytes)}, over its storage limit of {_size(usage.cap_bytes)}, "
                "so it was rolled back and nothing was changed. Write less at once, or delete "
                "data first. Queries and deletes still work."
            )
        else:
            message = (
                f"The service '{service_id}' has reached its storage limit of "
                f"{_size(usage.cap_bytes)} (it stores {_size(usage.used_bytes)}), so it is "
                "read-only: writes are refused until data is deleted. Queries and deletes "
                "still work."
            )
        super().__init__(STORAGE_LIMIT_CODE, message)
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
    only seen when the cached measure expires (`max_age`) or a write of this process measures
    inside its transaction (see the module's docstring for the margin).
    """

    def __init__(
        self,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        *,
        max_age: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cap_bytes < 0 or max_age < 0:
            raise ValueError("a storage cap and its max_age must not be negative")
        self.cap_bytes = cap_bytes
        self.max_age = max_age
        self.clock = clock  # a test's clock, moved by hand, decides when a measure expires
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
        self.remember(schema, usage)
        return usage

    def cached_usage(self, schema: str) -> StorageUsage | None:
        """The service's size if this process's cache can be trusted, without any query."""
        with self._lock:
            measure = self._measures.get(schema)
        return measure.usage if measure is not None and self._trusted(measure) else None

    def last_usage(self, schema: str) -> StorageUsage | None:
        """The service's last measure, however old (a storage sample for its usage graph)."""
        with self._lock:
            measure = self._measures.get(schema)
        return measure.usage if measure is not None else None

    def reserve(self, schema: str, growth_bound: int) -> bool:
        """Whether a write that adds at most `growth_bound` bytes may commit without a measure:
        the cached measure is trusted and, with every bound reserved since it was taken and this
        one, stays under the cap. The bound is then counted against the cached measure."""
        with self._lock:
            measure = self._measures.get(schema)
            if measure is None or not self._trusted(measure) or measure.usage.over:
                return False
            if measure.usage.used_bytes + measure.pending_bytes + growth_bound >= self.cap_bytes:
                return False
            measure.pending_bytes += growth_bound
            return True

    def remember(self, schema: str, usage: StorageUsage) -> None:
        """Keep a measure taken elsewhere (inside a write's transaction)."""
        with self._lock:
            self._measures[schema] = _Measure(usage, self.clock())

    def record_write(self, schema: str) -> None:
        """Note a write that was not measured or bounded: the next check measures again."""
        self.forget(schema)

    def record_delete(self, schema: str) -> None:
        """Note a committed delete, so a refused service is measured again at its next write."""
        self.forget(schema)

    def forget(self, schema: str) -> None:
        """Drop the cached measure (after a delete, a reset, or the service's removal)."""
        with self._lock:
            self._measures.pop(schema, None)

    def _trusted(self, measure: _Measure) -> bool:
        if self.clock() - measure.measured_at >= self.max_age:
            return False
        if measure.usage.over:
            # A refusal holds until it expires or a delete drops it: refused writes change nothing.
            return True
        return measure.usage.used_bytes + measure.pending_bytes < self.cap_bytes


@dataclass
class StorageGuard:
    """The storage cap of one write request, checked inside its transaction before COMMIT (the
    `StorageCheck` of `opencrud.limits`, and `/import`'s check)."""

    quota: StorageQuota
    service_id: str
    schema: str

    def before_commit(self, growth_bound: int) -> Steps[None]:
        """Steps: commit at once when the bound fits the known room; otherwise measure inside
        the transaction and raise `StorageLimitReached` (the caller rolls back) when over."""
        if growth_bound <= 0 or self.quota.reserve(self.schema, growth_bound):
            return
        usage = yield from measure_steps(self.schema, self.quota.cap_bytes)
        self._judge(usage)

    def before_import_commit(self, conn: Connection) -> None:
        """`/import` measures before its COMMIT, always: it is a bulk path, and its values (up
        to the request limit, 16 MB) are not bounded as a mutation's statements are."""
        self._judge(measure_usage(conn, self.schema, self.quota.cap_bytes))

    def _judge(self, usage: StorageUsage) -> None:
        if usage.over:
            # Rolled back: the next write measures again instead of trusting this measure.
            self.quota.forget(self.schema)
            raise StorageLimitReached(self.service_id, usage, rolled_back=True)
        self.quota.remember(self.schema, usage)


def measure_usage(conn: Connection, schema: str, cap_bytes: int) -> StorageUsage:
    """The service's size (see `measure_steps`), on a synchronous connection, in autocommit or
    inside the caller's transaction (which stays usable)."""
    steps = measure_steps(schema, cap_bytes)
    bound = schema_sql(schema)
    result: Result | None = None  # a generator starts on None
    error: Exception | None = None
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        while True:
            try:
                command = steps.throw(error) if error else steps.send(result)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            error = None
            try:
                cur.execute(bind_schema(command.query, bound), command.params)
                result = Result(cur.fetchall() if cur.description else [], cur.rowcount)
            except errors.UndefinedTable as exc:
                error = exc


def measure_steps(schema: str, cap_bytes: int) -> Steps[StorageUsage]:
    """The service's size: its files, or its live data when the files reach the cap. Steps (see
    `opencrud.steps`) that must run inside a transaction: the live scan runs under a savepoint,
    so a table dropped by a concurrent deploy leaves the caller's transaction usable."""
    row = (yield Sql(FILES_SQL, [schema])).one()
    files = int(row[0]) if row else 0
    if files < cap_bytes:
        return StorageUsage(files, cap_bytes)
    tables = (yield Sql(_TABLES, [schema])).rows
    if not tables:
        return StorageUsage(files, cap_bytes)
    scans = " UNION ALL ".join(_live_rows_bytes(name, columns) for name, _, columns in tables)
    yield Sql("SAVEPOINT refract_storage")
    try:
        row = (
            yield Sql(f"SELECT coalesce(sum(bytes), 0)::bigint FROM ({scans}) AS rows(bytes)")  # noqa: S608
        ).one()
    except errors.UndefinedTable:
        yield Sql("ROLLBACK TO SAVEPOINT refract_storage")
        return StorageUsage(files, cap_bytes)
    yield Sql("RELEASE SAVEPOINT refract_storage")
    rows_bytes = int(row[0]) if row else 0
    live = rows_bytes + sum(int(index_bytes) for _, index_bytes, _ in tables)
    return StorageUsage(min(files, live), cap_bytes, live=True)


def _live_rows_bytes(table: str, columns: list[str]) -> str:
    """One table's live rows in bytes. Column by column, because `pg_column_size` of a stored
    value gives its size on disk (compressed, or in TOAST) without reading it back, where the
    size of a whole row would fetch and flatten every TOASTed value."""
    values = " + ".join(f"coalesce(pg_column_size({ident(column)}), 0)" for column in columns)
    return (
        f"SELECT count(*) * {ROW_OVERHEAD_BYTES} + coalesce(sum({values or '0'}), 0) "  # noqa: S608
        f"FROM {in_service_schema(table)}"
    )


def _size(value: int) -> str:
    if value >= 1024 * 1024:
        return f"{value / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    return f"{value / 1024:.1f} kB".replace(".0 kB", " kB")
