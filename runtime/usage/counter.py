"""Counting on the request path: plain integers in dictionaries, no I/O, no lock.

Every request adds to its service's row for the current minute (`ServiceMinute`) and, for a
data API request, to its operation's row (`OperationMinute`). The flusher swaps the rows out
once a second or so (`UsageCounter.take`) and writes them in one round trip (`runtime.usage.store`);
a flush that fails gives its rows back (`merge`), so a database blip loses nothing.

The event loop is one thread and the counter is only touched from it (worker threads hand
their results back to the loop before counting), so no lock is needed.

An operation is known by its name (`operationName`, else the name in the document) or, for an
anonymous document, by its normalized text: comments, string and number literals stripped and
whitespace made canonical, so a client that inlines its values still makes one row. The text
is normalized once per distinct document (a bounded cache), so a client sending the same few
documents pays a dictionary lookup per request.
"""

from __future__ import annotations

import hashlib
import re
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.opencrud.hoist import scan

# Upper bounds of the latency buckets, in milliseconds (the last bucket is everything above
# 10 s). Fixed for all time: rows of any age add up, and p50/p95 come from any window's sum.
LATENCY_BOUNDS_MS = (1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
OTHER = "other"  # the row past a service's operations cap
RECENT_DELAYS = 10  # Throttled-By values kept per service and minute
DOCUMENT_CACHE = 4096  # distinct documents whose identity is remembered
KNOWN_TEXTS = 64  # texts a service's row maps straight to their operation's row
MAX_DOCUMENT_CHARS = 20_000  # a longer document is identified by its first characters

_COMMENT = re.compile(r"#[^\n\r]*")
_STRING = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"')
_NUMBER = re.compile(r"(?<![_A-Za-z0-9$])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_SPACE = re.compile(r"[\s,]+")
# The space on either side of punctuation goes; two passes that replace with nothing cost a
# quarter of one pass keeping the punctuation through a `\1` template.
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[{}()\[\]:!=@$|.&])")
_SPACE_AFTER_PUNCT = re.compile(r"(?<=[{}()\[\]:!=@$|.&]) ")
_OPERATION_NAME = re.compile(r"^(?:query|mutation|subscription) ?([_A-Za-z][_0-9A-Za-z]*)")


def normalize(document: str) -> str:
    """The document with literals replaced (`""`, `0`) and canonical whitespace."""
    text = _STRING.sub('""', document[:MAX_DOCUMENT_CHARS])
    text = _COMMENT.sub(" ", text)
    text = _NUMBER.sub("0", text)
    text = _SPACE.sub(" ", text).strip()
    return _SPACE_AFTER_PUNCT.sub("", _SPACE_BEFORE_PUNCT.sub("", text))


@dataclass(frozen=True)
class Operation:
    """An operation's identity: `key` (stable, short), `name` (or None) and its document."""

    key: str
    name: str | None
    document: str


# What may come before a number for `_NUMBER` to read exactly that number (not after a name
# character or `$`, where it reads none, nor after `.`, `+` or `-`, where a number before it
# could run into it).
_BEFORE_NUMBER = frozenset(' \t\n\r,()[]{}:=!|&@"')


def canonical(document: str) -> str | None:
    """The document with its string literals as `""` and its numbers as `0` (hoisting's
    literals, `runtime.opencrud.hoist.scan`): a text that normalises exactly as the document
    does, and that every document differing from it only in those values shares. So a client
    inlining values is identified once, not once per text. None where normalising could read
    the document otherwise (then it is identified as it is): a quote or `#` outside the
    literals (a block string, a comment), a string followed by a quote (`""` then `"` reads as
    a block string), a number after anything but a space or punctuation (after a name
    character or `$` it is no number; after `.`, `+` or `-` another may run into it), a text
    past the normalised length. A test checks the claim over generated documents."""
    if len(document) > MAX_DOCUMENT_CHARS:
        return None
    found = scan(document)
    if found is None:
        return None
    pieces = []
    at = 0
    for literal in found.literals:
        start, end = literal.start, literal.end
        between = document[at:start]
        if '"' in between or "#" in between:
            return None
        if literal.kind == "string":
            if document[end : end + 1] == '"':
                return None
            pieces += [between, '""']
        else:
            if start and document[start - 1] not in _BEFORE_NUMBER:
                return None
            pieces += [between, "0"]
        at = end
    rest = document[at:]
    if '"' in rest or "#" in rest:
        return None
    pieces.append(rest)
    return "".join(pieces)


def identify(document: str, operation_name: str | None) -> Operation:
    normalized = normalize(document)
    name = operation_name
    if not name:
        match = _OPERATION_NAME.match(normalized)
        name = match.group(1) if match else None
    label = f"name:{name}" if name else f"doc:{normalized}"
    key = hashlib.sha256(label.encode()).hexdigest()[:24]
    return Operation(key, name, normalized)


def _text_of(item: Any) -> tuple[str, str | None] | None:
    """An operation's document and name as sent, when both are plain (a key of `known`)."""
    if type(item) is not dict:
        return None
    document, name = item.get("query"), item.get("operationName")
    if type(document) is str and (name is None or type(name) is str):
        return document, name
    return None


def latency_bucket(seconds: float) -> int:
    return bisect_left(LATENCY_BOUNDS_MS, seconds * 1000)


@dataclass
class ServiceMinute:
    requests: int = 0
    operations: int = 0
    errors: int = 0
    throttled: int = 0  # requests the throttle delayed
    delay_ms: int = 0
    delay_max_ms: int = 0
    refused: int = 0  # 1004
    storage_refused: int = 0  # 1003
    latency_sum_ms: float = 0.0
    latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    delays: list[int] = field(default_factory=list)  # recent Throttled-By values
    operation_keys: set[str] = field(default_factory=set)
    # (document, operation name) -> its operation's row this minute: a request sending a text
    # seen before is counted with one lookup. A cache of this process only, never flushed.
    known: dict[tuple[str, str | None], OperationMinute] = field(
        default_factory=dict, compare=False, repr=False
    )

    def merge(self, other: ServiceMinute) -> None:
        self.requests += other.requests
        self.operations += other.operations
        self.errors += other.errors
        self.throttled += other.throttled
        self.delay_ms += other.delay_ms
        self.delay_max_ms = max(self.delay_max_ms, other.delay_max_ms)
        self.refused += other.refused
        self.storage_refused += other.storage_refused
        self.latency_sum_ms += other.latency_sum_ms
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.delays = (other.delays + self.delays)[-RECENT_DELAYS:]
        self.operation_keys |= other.operation_keys


@dataclass
class OperationMinute:
    operation: Operation
    count: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def merge(self, other: OperationMinute) -> None:
        self.count += other.count
        self.errors += other.errors
        self.latency_sum_ms += other.latency_sum_ms
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]


ServiceKey = tuple[str, str, int]  # server, project id, minute (Unix minutes)
OperationKey = tuple[str, str, int, str]  # ... and the operation's key


@dataclass
class Snapshot:
    services: dict[ServiceKey, ServiceMinute] = field(default_factory=dict)
    operations: dict[OperationKey, OperationMinute] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.services)


class UsageCounter:
    """This process's counts since the last flush. `clock` (seconds) is injectable for tests."""

    def __init__(
        self, operations_per_minute: int = 100, clock: Callable[[], float] = time.time
    ) -> None:
        self.operations_per_minute = operations_per_minute
        self.clock = clock
        self.current = Snapshot()
        self._documents: dict[tuple[str, str | None], Operation] = {}

    def request(
        self,
        server: str,
        project: str,
        *,
        latency: float,
        operations: int = 1,
        error: bool = False,
        delay_ms: int = 0,
        refused: bool = False,
        storage_refused: bool = False,
        payload: Any = None,
    ) -> None:
        """Count one request of a service endpoint. `latency` (seconds) runs from admission
        (after any throttle wait) to the answer; `delay_ms` is its `Throttled-By`. `payload`,
        for the data API, is the request body, whose operations get their own rows."""
        minute = int(self.clock() // 60)
        key = (server, project, minute)
        row = self.current.services.get(key)
        if row is None:
            row = self.current.services[key] = ServiceMinute()
        row.requests += 1
        row.operations += operations
        latency_ms = latency * 1000
        bucket = bisect_left(LATENCY_BOUNDS_MS, latency_ms)  # latency_bucket, inlined
        if refused:
            row.refused += 1
        else:
            row.latency[bucket] += 1
            row.latency_sum_ms += latency_ms
        if error:
            row.errors += 1
        if storage_refused:
            row.storage_refused += 1
        if delay_ms > 0:
            row.throttled += 1
            row.delay_ms += delay_ms
            if delay_ms > row.delay_max_ms:
                row.delay_max_ms = delay_ms
            row.delays.append(delay_ms)
            if len(row.delays) > RECENT_DELAYS:
                del row.delays[0]
        if refused or payload is None:
            return
        known = row.known
        for item in payload if isinstance(payload, list) else (payload,):
            text = _text_of(item)
            op = known.get(text) if text is not None else None
            if op is None:
                op = self._operation_row(row, key, item)
                if op is None:
                    continue
                if text is not None and len(known) < KNOWN_TEXTS:
                    known[text] = op
            op.count += 1
            op.latency[bucket] += 1
            op.latency_sum_ms += latency_ms
            if error:
                op.errors += 1

    def _operation_row(
        self, row: ServiceMinute, key: ServiceKey, item: Any
    ) -> OperationMinute | None:
        """The row of the operation `item` sends (None when it sends none): its own, or the
        service's `OTHER` row once the minute holds `operations_per_minute` operations."""
        operation = self._operation(item)
        if operation is None:
            return None
        op_key = operation.key
        if op_key not in row.operation_keys:
            if len(row.operation_keys) >= self.operations_per_minute:
                op_key = OTHER
                operation = Operation(OTHER, None, "")
            row.operation_keys.add(op_key)
        okey = (*key, op_key)
        op = self.current.operations.get(okey)
        if op is None:
            op = self.current.operations[okey] = OperationMinute(operation)
        return op

    def _operation(self, item: Any) -> Operation | None:
        if not isinstance(item, dict):
            return None
        document = item.get("query")
        if not isinstance(document, str):
            return None
        name = item.get("operationName")
        cache_key = (document, name if isinstance(name, str) else None)
        known = self._documents.get(cache_key)
        if known is None:
            # A new text: usually a client inlining values, whose texts share a canonical one.
            if len(self._documents) >= DOCUMENT_CACHE:
                self._documents.clear()  # stay bounded
            shared = canonical(document)
            if shared is not None:
                known = self._documents.get((shared, cache_key[1]))
            if known is None:
                known = identify(document, cache_key[1])
                if shared is not None:
                    self._documents[(shared, cache_key[1])] = known
            self._documents[cache_key] = known
        return known

    def take(self) -> Snapshot:
        """Everything counted since the last call; counting goes on in a new snapshot. Keys
        of the current minute keep their operations cap (the set of keys seen) so the cap
        holds across flushes within the minute."""
        taken, self.current = self.current, Snapshot()
        minute = int(self.clock() // 60)
        for (server, project, row_minute), row in taken.services.items():
            if row_minute == minute:
                self.current.services[(server, project, minute)] = ServiceMinute(
                    operation_keys=set(row.operation_keys)
                )
        return taken

    def merge(self, snapshot: Snapshot) -> None:
        """Give a snapshot back (its flush failed): it is counted again with the next one."""
        for key, row in snapshot.services.items():
            mine = self.current.services.get(key)
            if mine is None:
                row.known.clear()  # its operations' rows may be merged into others below
                self.current.services[key] = row
            else:
                mine.merge(row)
        for okey, op in snapshot.operations.items():
            known = self.current.operations.get(okey)
            if known is None:
                self.current.operations[okey] = op
            else:
                known.merge(op)
