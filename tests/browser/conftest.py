"""A sandbox region (the runtime as a process, trusting the platform's key) for the pages that
provision servers."""

from tests.servers.conftest import (  # noqa: F401 - fixtures shared with the servers' tests
    database,
    platform_keys,
    region,
    regions,
)
