"""The dev stack's runtime (`make run`): its management API is secured with a secret of its own.

Before, `make run` started the runtime with no management secret: anything that reached
localhost:4466, a web page in the developer's browser included, could list or delete services.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from cloud import devstack
from tests.runtime.conftest import (
    ROOT,
    Database,
    Runtime,
    database,  # noqa: F401 - the session's scratch database, a fixture
    free_port,
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
    assert stat.S_IMODE((data / "runtime.yml").stat().st_mode) == 0o600

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
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


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
