"""Servers' fixtures: the platform's key pair, a sandbox region (the runtime as a real process,
configured with the platform's public key) and the settings that name it.

The Celery worker of the end-to-end tests is another process: it reads the same values from
the environment, which `region_env` sets.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import jwt
import pytest

from servers.management_api import ManagementClient
from tests.runtime.conftest import (  # noqa: F401 - fixtures shared with the runtime's tests
    KeyPair,
    Runtime,
    database,
    make_key_pair,
    run_runtime,
)


@pytest.fixture(scope="session")
def platform_keys() -> KeyPair:
    return make_key_pair()


@pytest.fixture(scope="session")
def region(database, platform_keys: KeyPair, tmp_path_factory) -> Iterator[Runtime]:  # noqa: F811
    """A sandbox region: our runtime, whose management API trusts only the platform's key."""
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path_factory.mktemp("region")) as running:
        yield running


def closed_port_origin() -> str:
    """A loopback origin where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def regions(settings, monkeypatch, region: Runtime, platform_keys: KeyPair) -> dict[str, str]:
    """Two regions: `local` (the running runtime) and `gone` (nothing listens there)."""
    configured = {"local": region.url, "gone": closed_port_origin()}
    settings.SANDBOX_REGIONS = configured
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
    monkeypatch.setenv("SANDBOX_REGIONS", ",".join(f"{k}={v}" for k, v in configured.items()))
    monkeypatch.setenv("PLATFORM_PRIVATE_KEY", platform_keys.private_pem)
    # `make exec` names the dev stack's key file; a worker refuses both at once.
    monkeypatch.delenv("PLATFORM_PRIVATE_KEY_FILE", raising=False)
    return configured


@pytest.fixture
def silent_server():
    """Accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    listener.close()
    for conn in held:
        conn.close()


@pytest.fixture
def two_regions(settings, platform_keys: KeyPair) -> dict[str, str]:
    """Two configured regions where nothing listens: for pages and endpoints that only queue
    the check (the unit tests' on-commit callbacks never run it)."""
    configured = {"eu1": closed_port_origin(), "us1": closed_port_origin()}
    settings.SANDBOX_REGIONS = configured
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
    return configured


def empty_region(origin: str, private_pem: str) -> None:
    """The region outlives each test's database: remove every project a test left there, with
    a `*/*` token signed by the platform's key."""
    now = int(time.time())
    claims = {"grants": [{"target": "*/*", "action": "*"}], "iat": now, "exp": now + 60}
    client = ManagementClient(origin, token=jwt.encode(claims, private_pem, algorithm="RS256"))
    for project in client.list_projects():
        client.delete_project(project["name"], project["stage"])


# Private servers: a PostgreSQL that checks passwords, and the user's database on it.
from tests.servers.private_support import (  # noqa: E402, F401 - fixtures
    password_postgres,
    platform_runtime,
    private_platform,
    user_database,
)


@pytest.fixture
def private_offered(settings, platform_keys: KeyPair) -> str:
    """Private servers offered on a platform runtime where nothing listens: for pages and
    workflows that only queue provisioning (the unit tests' on-commit callbacks never run it)."""
    settings.PRIVATE_SERVER_RUNTIME = closed_port_origin()
    settings.PRIVATE_SERVER_ENDPOINT = "https://{server}.servers.example.com"
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
    return settings.PRIVATE_SERVER_RUNTIME
