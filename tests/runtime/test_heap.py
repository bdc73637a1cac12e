"""Cached APIs frozen out of the garbage collector's way, and reclaimed once dropped (no
database needed)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from runtime import heap
from runtime.lru import Lru


class Node:
    """Stands for an API: objects in reference cycles, as graphql-core's types are."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def clean_heap() -> Iterator[None]:
    heap.configure(0)
    heap._dropped = 0
    yield
    heap._dropped = 0
    gc.unfreeze()
    gc.collect()


def test_settling_freezes_what_is_alive_and_frees_the_builds_garbage(clean_heap: None) -> None:
    kept = Node()
    garbage = Node()
    garbage_ref = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()
    heap.settle()
    assert garbage_ref() is None  # a cycle left behind is collected, not frozen
    assert gc.get_freeze_count() > frozen_before
    assert any(o is kept for o in gc.get_objects()) is False  # frozen: out of every generation
    kept_ref = weakref.ref(kept)
    del kept
    gc.collect()
    assert kept_ref() is not None  # a frozen cycle outlives full collections...


def test_dropped_apis_are_reclaimed_after_enough_have_piled_up(clean_heap: None) -> None:
    apis: Lru[Node] = Lru(2, on_drop=heap.dropped)
    refs = []
    for k in range(heap.RECLAIM_AFTER + 1):
        api = Node()
        refs.append(weakref.ref(api))
        apis.remember(k, api)
        del api
        heap.settle()
    assert heap.pending() == heap.RECLAIM_AFTER - 1  # 17 built, 2 kept
    gc.collect()
    assert all(r() is not None for r in refs)  # the dropped ones are still frozen...
    apis.remember("new", Node())  # ...until a build finds enough dropped APIs waiting
    heap.settle()
    assert heap.pending() == 0
    alive = [k for k, r in enumerate(refs) if r() is not None]
    assert alive == [heap.RECLAIM_AFTER]  # the dropped ones freed; the one still cached kept
    assert gc.get_freeze_count() > 0  # and what is left is frozen again


def test_the_reclaim_waits_for_a_quarter_of_a_large_cache(clean_heap: None) -> None:
    heap.configure(400)
    for _ in range(heap.RECLAIM_AFTER):
        heap.dropped()
    heap.settle()
    assert heap.pending() == heap.RECLAIM_AFTER  # not yet: 100 for a cache of 400
    for _ in range(100 - heap.RECLAIM_AFTER):
        heap.dropped()
    heap.settle()
    assert heap.pending() == 0


def test_an_lru_reports_every_value_that_leaves() -> None:
    now = [0.0]
    left: list[str] = []
    lru: Lru[str] = Lru(2, ttl=10, clock=lambda: now[0], on_drop=left.append)
    lru.remember("a", "A")
    lru.remember("b", "B")
    lru.remember("c", "C")  # evicts A
    lru.remember("b", "B2")  # replaces B
    lru.remember("b", "B2")  # the same value again: nothing leaves
    now[0] = 11
    assert lru.lookup("c") is None  # expired
    lru.forget()
    assert left == ["A", "B", "C", "B2"]
