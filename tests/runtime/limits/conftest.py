"""Fixtures of the sandbox-limit tests: a real Redis (REDIS_URL) with a key prefix per test.

The PostgreSQL fixture (`database`, a scratch database per session) comes from
`tests/runtime/conftest.py`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail("REDIS_URL is not set (make test sets it)")
    return url


@pytest.fixture
def throttle_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own, so no other process or test shares its buckets."""
    prefix = f"refract-test:{secrets.token_hex(6)}:throttle:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
