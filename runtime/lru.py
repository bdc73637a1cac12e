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
    than `ttl` seconds is not returned (and is dropped when met)."""

    def __init__(
        self, size: int, ttl: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if size < 1:
            raise ValueError("an LRU holds at least one entry")
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()
        self._lock = Lock()

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
            if self.ttl is not None and self.clock() - entry[1] >= self.ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def peek(self, key: Hashable) -> V | None:
        """The entry, whatever its age, without counting as a use (it keeps its place)."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else entry[0]

    def remember(self, key: Hashable, value: V) -> V:
        with self._lock:
            self._entries[key] = (value, self.clock())
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def forget(self, predicate: Callable[[Hashable], bool] | None = None) -> None:
        """Drop every entry, or those whose key matches `predicate`."""
        with self._lock:
            if predicate is None:
                self._entries.clear()
                return
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]
