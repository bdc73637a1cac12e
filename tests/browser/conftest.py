"""A sandbox region (the runtime as a process, trusting the platform's key) for the pages that
provision servers."""

from tests.servers.conftest import (  # noqa: F401 - fixtures shared with the servers' tests
    database,
    password_postgres,
    platform_keys,
    platform_runtime,
    private_platform,
    region,
    regions,
    user_database,
)
