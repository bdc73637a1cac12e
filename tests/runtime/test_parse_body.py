"""Request bodies are parsed with orjson, and whatever orjson reads differently from the
standard library (integers past 64 bits, NaN, lone surrogates) is left to the standard library:
the runtime reads every body as `json.loads` does."""

from __future__ import annotations

import json
import math

import pytest

from runtime.app import parse_body

BODIES = [
    b'{"query": "{ user(where: {id: \\"u000000000000000000000042\\"}) { id } }"}',
    b'{"query": "{ a }", "variables": {"n": 123456789012345678901234567890}}',
    b'{"variables": {"n": [1, -18446744073709551616, 18446744073709551615]}}',
    b"18446744073709551616",
    b'{"variables": {"x": 1.5e300, "y": -0.0, "z": 9007199254740993}}',
    b'{"variables": {"deep": [{"a": [[12345678901234567890123]]}], "f": 0.5}}',
    b'{"variables": {"id": "12345678901234567890123", "f": 2.5, "n": 7}}',
    b'[{"query": "{ a }", "variables": {"n": -99999999999999999999}}]',
    b'{"variables": {"s": "caf\\u00e9 \\ud83c\\udf89 \\"quoted\\" \\\\"}}',
    b'[{"query": "{ a }"}, {"query": "{ b }", "operationName": null}]',
    b'{"a": 1, "a": 2}',
    b'"just a string"',
    b"  null ",
]


def _typed(value: object) -> object:
    """The value with every number paired with its type (1 == 1.0, yet they differ)."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (type(value).__name__, value)
    return value


@pytest.mark.parametrize("body", BODIES)
def test_a_body_reads_as_the_standard_library_reads_it(body: bytes):
    assert _typed(parse_body(body)) == _typed(json.loads(body))


def test_what_orjson_refuses_is_read_or_refused_as_before():
    assert math.isnan(parse_body(b'{"n": NaN}')["n"])
    assert parse_body(b'{"n": Infinity}') == {"n": math.inf}
    assert parse_body(b"") is None
    with pytest.raises(ValueError):
        parse_body(b"{nope")
    with pytest.raises(ValueError):
        parse_body(b'{"a": 1')
