"""The dev stack's runtime (`make run`): its management API is secured with a secret of its own
and the platform's public key, and it is the stack's one sandbox region.

Before, `make run` started the runtime with no management secret: anything that reached
localhost:4466, a web page in the developer's browser included, could list or delete services.
Then it had no platform key: "provision a sandbox" could not work against the dev stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from cloud import devstack
from cloud.env import env_origins, env_secret
from tests.runtime.conftest import (
    ROOT,
    Database,
    Runtime,
    database,  # noqa: F401 - the session's scratch database, a fixture
    free_port,
    make_key_pair,
    management_token,
)

pytestmark = [pytest.mark.multiprocess]


def test_the_secret_is_made_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "management-secret"
    secret = devstack.management_secret(path)

    assert len(secret) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert devstack.management_secret(path) == secret  # kept, not made again
    path.chmod(0o644)
    assert devstack.management_secret(path) == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert devstack.management_secret(tmp_path / "other") != secret


def test_the_secret_lives_under_the_git_ignored_data_folder() -> None:
    assert devstack.MANAGEMENT_SECRET.parent == devstack.DATA == ROOT / ".data"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(devstack.MANAGEMENT_SECRET)], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, ".data/management-secret must be git-ignored"


def test_the_platform_key_is_made_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "platform-key.pem"
    made, public_pem = devstack.platform_key(path)

    assert made == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    derived = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert derived.decode() == public_pem
    assert devstack.platform_key(path) == (path, public_pem)  # kept, not made again
    path.chmod(0o644)
    assert devstack.platform_key(path) == (path, public_pem)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert devstack.platform_key(tmp_path / "other.pem")[1] != public_pem
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(devstack.PLATFORM_KEY)], cwd=ROOT, check=False
    )
    assert devstack.PLATFORM_KEY.parent == devstack.DATA
    assert ignored.returncode == 0, ".data/platform-key.pem must be git-ignored"


def test_the_console_gets_one_region_and_the_private_key_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    env = devstack.sandbox_env({"PATH": "/bin", "PLATFORM_PRIVATE_KEY": "stale"}, data)

    assert env["PATH"] == "/bin"
    assert env["PLATFORM_PRIVATE_KEY_FILE"] == str(data / "platform-key.pem")
    assert "PLATFORM_PRIVATE_KEY" not in env  # the key itself is in no process's environment
    assert env["SANDBOX_REGIONS"] == "local=http://localhost:4466"
    for name in ("PLATFORM_PRIVATE_KEY", "SANDBOX_REGIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PLATFORM_PRIVATE_KEY_FILE", env["PLATFORM_PRIVATE_KEY_FILE"])
    monkeypatch.setenv("SANDBOX_REGIONS", env["SANDBOX_REGIONS"])
    # What cloud/settings.py reads from that environment.
    assert env_origins("SANDBOX_REGIONS") == {"local": "http://localhost:4466"}
    assert env_secret("PLATFORM_PRIVATE_KEY", "") == (data / "platform-key.pem").read_text().strip()
    # A developer's own choice of regions is kept.
    mine = devstack.sandbox_env({"SANDBOX_REGIONS": "eu1=https://eu1.example.com"}, data)
    assert mine["SANDBOX_REGIONS"] == "eu1=https://eu1.example.com"
    # Private servers: registered on the same runtime, each under a `*.localhost` name.
    assert env["PRIVATE_SERVER_RUNTIME"] == "http://127.0.0.1:4466"
    assert env["PRIVATE_SERVER_ENDPOINT"] == "http://{server}.localhost:4466"


def post(url: str, payload: dict, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(payload).encode(), headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_dev_runtime_answers_only_requests_signed_with_the_secret(
    database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    command = devstack.runtime_command(database.conninfo(), os.environ["REDIS_URL"], data)
    config = yaml.safe_load((data / "runtime.yml").read_text())
    secret = (data / "management-secret").read_text().strip()
    assert config["managementApiSecret"] == secret
    assert config["managementPublicKey"] == devstack.platform_key(data / "platform-key.pem")[1]
    assert config["sandbox"] and config["redisUrl"] == os.environ["REDIS_URL"]
    assert config["consoleUrl"] == "http://localhost:3000"  # `<endpoint>/_admin` goes there
    assert stat.S_IMODE((data / "runtime.yml").stat().st_mode) == 0o600
    # The next start reuses the key: the same public key in the runtime's config.
    devstack.runtime_command(database.conninfo(), os.environ["REDIS_URL"], data)
    again = yaml.safe_load((data / "runtime.yml").read_text())
    assert again["managementPublicKey"] == config["managementPublicKey"]

    with started(command, tmp_path) as runtime:
        url = f"{runtime.url}/management"
        listing = {"query": "{ listProjects { name } }"}
        json_type = {"Content-Type": "application/json"}

        status, answer = post(url, listing, json_type)
        assert answer["errors"][0]["code"] == 3015, "no token, no services"
        status, answer = post(url, listing, {**json_type, "Authorization": "Bearer x.y.z"})
        assert answer["errors"][0]["code"] == 3015
        token = management_token(secret)  # what the CLI signs with PRISMA_MANAGEMENT_API_SECRET
        status, answer = post(url, listing, {**json_type, "Authorization": f"Bearer {token}"})
        assert (status, answer) == (200, {"data": {"listProjects": []}})
        # What a web page can send without a preflight is refused before anything else.
        status, answer = post(url, listing, {"Content-Type": "text/plain"})
        assert status == 415
        # RS256: the platform's key opens it, any other key pair does not.
        platform = (data / "platform-key.pem").read_text()
        stranger = make_key_pair().private_pem
        for key, expected in ((platform, (200, {"data": {"listProjects": []}})), (stranger, None)):
            signed = rs256_token(key)
            status, answer = post(url, listing, {**json_type, "Authorization": f"Bearer {signed}"})
            if expected:
                assert (status, answer) == expected
            else:
                assert answer["errors"][0]["code"] == 3015


@contextlib.contextmanager
def started(command: list[str], tmp_path: Path) -> Iterator[Runtime]:
    """The dev stack's runtime command, run on a free port until the block ends."""
    port = free_port()
    log = (tmp_path / "runtime.log").open("w")
    process = subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    runtime = Runtime(f"http://127.0.0.1:{port}", process, tmp_path / "runtime.log")
    try:
        wait_until_up(runtime)
        yield runtime
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def rs256_token(private_pem: str) -> str:
    now = int(time.time())
    claims = {"grants": [{"target": "*/*", "action": "*"}], "iat": now, "exp": now + 60}
    return jwt.encode(claims, private_pem, algorithm="RS256")


@pytest.fixture
def dev_runtime(database: Database, tmp_path: Path):  # noqa: F811
    """The runtime exactly as `make run` configures it (on a free port), and its data folder."""
    data = tmp_path / "data"
    command = devstack.runtime_command(database.conninfo(), os.environ["REDIS_URL"], data)
    with started(command, tmp_path) as runtime:
        yield runtime, data


def test_provisioning_a_sandbox_works_against_the_dev_stack(
    dev_runtime, settings, monkeypatch, team, owner, django_capture_on_commit_callbacks
) -> None:
    from servers import services
    from servers.models import Server

    runtime, data = dev_runtime
    env = devstack.sandbox_env({}, data)
    monkeypatch.setenv("PLATFORM_PRIVATE_KEY_FILE", env["PLATFORM_PRIVATE_KEY_FILE"])
    monkeypatch.delenv("PLATFORM_PRIVATE_KEY", raising=False)
    # What the console reads from `make run`'s environment; the region on this test's port.
    settings.PLATFORM_PRIVATE_KEY = env_secret("PLATFORM_PRIVATE_KEY", "")
    settings.SANDBOX_REGIONS = {"local": runtime.url}

    with django_capture_on_commit_callbacks(execute=False) as queued:
        server = services.provision_sandbox(owner.user, team, "local")
    assert len(queued) == 1
    assert services.run_provisioning(str(server.id)) == Server.Status.HEALTHY
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY, server.status_reason
    assert server.version and server.service_origin == f"{runtime.url}/{team.slug}"
    assert services.check_servers() == {"healthy": 1}


def wait_until_up(runtime: Runtime) -> None:
    deadline = time.monotonic() + 30
    while True:
        if runtime.process.poll() is not None:
            pytest.fail(f"the dev runtime exited:\n{runtime.log.read_text()}")
        try:
            if runtime.get("/status").body == "OK":
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the dev runtime did not start:\n{runtime.log.read_text()}")
        time.sleep(0.1)


def test_make_exec_gets_the_dev_region(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    show = (
        "import os; print(os.environ['SANDBOX_REGIONS'], os.environ['PLATFORM_PRIVATE_KEY_FILE'])"
    )
    assert devstack.run_exec([devstack.PYTHON, "-c", show], data=tmp_path) == 0
    regions, key_file = capfd.readouterr().out.split()
    assert regions == os.environ.get("SANDBOX_REGIONS", devstack.SANDBOX_REGION)
    assert key_file == str(tmp_path / devstack.PLATFORM_KEY.name)
