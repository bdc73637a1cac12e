"""A mutation's events leave as the text the standard library's encoder writes (orjson writes it
when it can), in chunks that fit a notification and come back together whole."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest

from runtime.subscriptions.events import (
    _ENCODER,
    CHUNK_CHARS,
    EventSink,
    Reassembler,
    _encode,
    listeners_table,
    notifications,
)

DOCUMENTS: list[dict[str, Any]] = [
    {"p": "a$b", "e": [{"k": "CREATED", "m": "User", "id": "cjld2cjxh0000qzrmn831i7rn"}]},
    {
        "p": "a$b",
        "e": [{"k": "UPDATED", "m": "U", "id": 5, "f": ["a"], "pv": {"a": 1.5, "b": None}}],
    },
    {"p": "a$b", "e": [{"k": "DELETED", "m": "U", "id": 7, "pv": {"name": "café", "n": None}}]},
    {"p": "a$b", "e": [{"pv": {"nan": float("nan"), "inf": [float("-inf")], "z": None}}]},
    {"p": "a$b", "e": [{"pv": {"s": 'a"b\\c\n\u2028\t\x00', "f": 1e300, "g": -0.0, "h": 0.1}}]},
    {"p": "a$b", "e": [{"id": uuid.UUID(int=5), "at": datetime.datetime(2024, 1, 2, 3, 4, 5)}]},
    {"p": "a$b", "e": [{"price": decimal.Decimal("1.10"), "big": 2**70, "yes": True}]},
    {"p": "a$b", "e": [{1: "a key that is no string"}]},
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_the_events_text_is_the_standard_encoders(document: dict[str, Any]):
    assert _encode(document) == _ENCODER.encode(document)


def test_large_events_are_chunked_and_put_together_again():
    events = [{"k": "UPDATED", "m": "Post", "id": "p1", "f": ["t"], "pv": {"t": "é" * 9000}}]
    payloads = notifications(EventSink("refract_x", "a$b", listeners_table("management")), events)
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 and len(p) <= CHUNK_CHARS + 40 for p in payloads)
    reassembler = Reassembler()
    documents = [reassembler.add(p) for p in reversed(payloads)]
    assert documents[:-1] == [None] * (len(payloads) - 1)
    assert documents[-1] == {"p": "a$b", "e": events}
