"""Generated APIs kept out of the cyclic garbage collector's full collections.

A 30-type datamodel's API grows to about 100,000 objects as its types are read, and a runtime
serving a hundred datamodels holds millions. Python's collector scans all of them in every
full collection, which then pauses the process for half a second (measured with 100
datamodels: 212 to 526 ms, several in a row while new APIs were being built), and every request
waiting on the event loop waits that long too. An API lives as long as the directory caches
it, so once built and cached it is moved into the collector's permanent generation
(`gc.freeze`), which collections never scan (types built later, as requests read them, join it
at the next freeze).

The cost is that cycles among frozen objects are never collected while frozen: an API dropped
from the cache stays in memory until it is reclaimed. Once `RECLAIM_AFTER` (at least; a
quarter of the cache) dropped APIs have piled up, the next build unfreezes everything and runs
one full collection (the old pause, once per that many evictions, instead of once every few
seconds), then freezes what is left.
"""

from __future__ import annotations

import gc
import threading

RECLAIM_AFTER = 16

_lock = threading.Lock()
_dropped = 0  # frozen APIs dropped from the cache since the last reclaim
_reclaim_after = RECLAIM_AFTER


def configure(cache_size: int) -> None:
    """Reclaim once a quarter of a cache of `cache_size` APIs has been dropped (at least
    `RECLAIM_AFTER`)."""
    global _reclaim_after
    _reclaim_after = max(RECLAIM_AFTER, cache_size // 4)


def settle() -> None:
    """Freeze what is alive now, after an API was built and cached: first a collection of the
    young generations (the new API's objects are there, so a cycle the build left behind is
    freed, not frozen); or, when enough dropped APIs wait, the full reclaim."""
    global _dropped
    with _lock:
        reclaim = _dropped >= _reclaim_after
        if reclaim:
            _dropped = 0
    if reclaim:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


def dropped(_api: object = None) -> None:
    """An API left the cache; its objects stay frozen until the next reclaim."""
    global _dropped
    with _lock:
        _dropped += 1


def pending() -> int:
    """Dropped APIs not reclaimed yet."""
    return _dropped
