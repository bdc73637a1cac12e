"""A small thread-safe LRU map, optionally with a time to live (requests run on the event loop
and in worker threads). The runtime's caches are all of this one kind, each with one owner."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from threading import Lock
from typing import Generic, TypeVar

V = TypeVar("V")


class Lru(Generic[V]):
    """At most `size` entries, the least recently used evicted first; with `ttl`, an entry older
    than `ttl` seconds is not returned (and is dropped when met). `on_drop` is called with each
    value that leaves: evicted, expired, forgotten or replaced by another under its key."""

    def __init__(
        self,
        size: int,
        ttl: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_drop: Callable[[V], None] | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("an LRU holds at least one entry")
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self._lock = Lock()
        self.on_drop = on_drop

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Hashable]:
        """The keys, least recently used first (a snapshot)."""
        with self._lock:
            return iter(list(self._entries))

    def lookup(self, key: Hashable) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.ttl is None or self.clock() - entry[1] < self.ttl:
                self._entries.move_to_end(key)
                return entry[0]
            del self._entries[key]
        self._dropped([entry[0]])
        return None

    def peek(self, key: Hashable) -> V | None:
        """The entry, whatever its age, without counting as a use (it keeps its place)."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry[0]

    def remember(self, key: Hashable, value: V) -> V:
        dropped = []
        with self._lock:
            old = self._entries.get(key)
            if old is not None and old[0] is not value:
                dropped.append(old[0])
            self._entries[key] = (value, self.clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                dropped.append(self._entries.popitem(last=False)[1][0])
        self._dropped(dropped)
        return value

    def forget(self, predicate: Callable[[Hashable], bool] | None = None) -> None:
        """Drop every entry, or those whose key matches `predicate`."""
        with self._lock:
            if predicate is None:
                dropped = [value for value, _ in self._entries.values()]
                self._entries.clear()
            else:
                dropped = [self._entries.pop(k)[0] for k in list(self._entries) if predicate(k)]
        self._dropped(dropped)

    def _dropped(self, values: list[V]) -> None:
        if self.on_drop is not None:
            for value in values:
                self.on_drop(value)
