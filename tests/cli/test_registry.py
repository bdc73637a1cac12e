"""Servers of the local registry: `refract servers add` makes a key pair and prints the
configuration; the runtime, started by the test with exactly that configuration, then takes
deploys signed with the private key, and refuses a wrong key with a clear message."""

from __future__ import annotations

import json
import os
import secrets
import stat
import urllib.request
from pathlib import Path

import jwt
import pexpect
import pytest
import yaml

from tests.cli.conftest import refract_command
from tests.runtime import conftest as runtime_conftest
from tests.runtime.conftest import database, free_port, run_runtime  # noqa: F401 - fixture
from tests.servers.conftest import closed_port_origin

pytestmark = pytest.mark.multiprocess

MANAGEMENT_SECRET = "a-management-secret-for-the-registry-tests"
DATAMODEL = "type Post {\n  id: ID! @id\n  title: String!\n}\n"
PROJECT_QUERY = "query($n: String!, $s: String!) { project(name: $n, stage: $s) { name stage } }"


@pytest.fixture
def vm(make_user, database, tmp_path, monkeypatch):  # noqa: F811
    """A user who added the server `vm` to their registry, and that server (our runtime),
    configured with what `servers add` printed."""
    user = make_user("vm-owner", console="http://127.0.0.1:9")  # no console needed here
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    added = user.run("servers", "add", "vm", url)
    assert added.returncode == 0, added.output
    printed = added.stdout[added.stdout.index("managementPublicKey:") :]
    config = {
        **yaml.safe_load(printed),
        "managementApiSecret": MANAGEMENT_SECRET,
        "databases": {"default": database.prisma_config()},
    }
    monkeypatch.setattr(runtime_conftest, "free_port", lambda: port)
    with run_runtime(config, tmp_path) as running:
        assert running.url == url
        yield user, running


def write_project(user, service: str, extra: str = "", datamodel: str = DATAMODEL) -> None:
    (user.project / "datamodel.prisma").write_text(datamodel)
    (user.project / "prisma.yml").write_text(
        f"service: {service}\nstage: dev\n{extra}datamodel: datamodel.prisma\n"
    )


def operator_token(user) -> str:
    """A `*/*` token signed with the key `servers add` stored, as the test's own check."""
    key_file = user.registry()["clusters"]["vm"]["clusterSecret"]
    with open(key_file) as handle:
        private_pem = handle.read()
    return jwt.encode(
        {"grants": [{"target": "*/*", "action": "*"}], "exp": 2**31 - 1},
        private_pem,
        algorithm="RS256",
    )


def project_on(running, user, service: str) -> dict | None:
    answer = running.management(PROJECT_QUERY, {"n": service, "s": "dev"}, operator_token(user))
    return (answer.get("data") or {}).get("project")


def query(url: str, document: str, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps({"query": document}).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def test_servers_add_stores_the_private_key_and_keeps_the_registry_readable(make_user):
    user = make_user()
    user.registry_file.parent.mkdir(parents=True)
    user.registry_file.write_text(
        "# my registry\ncloudSessionKey: abc.def.ghi  # from prisma1 login\nclusters: {}\n"
    )

    added = user.run("servers", "add", "vm", "http://127.0.0.1:4466", "--json")

    assert added.returncode == 0, added.output
    body = added.json()
    key_file = body["private_key_file"]
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(user.registry_file.stat().st_mode) == 0o600
    assert "BEGIN PRIVATE KEY" in Path(key_file).read_text()
    assert "BEGIN PUBLIC KEY" in body["config"] and body["config"].startswith(
        "managementPublicKey: |"
    )
    text = user.registry_file.read_text()
    assert "# my registry" in text and "# from prisma1 login" in text
    assert user.registry() == {
        "cloudSessionKey": "abc.def.ghi",
        "clusters": {"vm": {"host": "http://127.0.0.1:4466", "clusterSecret": key_file}},
    }

    again = user.run("servers", "add", "vm", "http://127.0.0.1:4467")
    assert again.returncode == 1 and "already in the registry" in again.stderr

    listed = user.run("servers", "--json")
    assert [(s["cluster"], s["kind"], s["status"]) for s in listed.json()["servers"]] == [
        ("vm", "self-hosted", "unreachable")
    ]

    removed = user.run("servers", "remove", "vm")
    assert removed.returncode == 0, removed.output
    assert user.registry()["clusters"] == {}
    assert not os.path.exists(key_file)


def test_a_deploy_to_a_registry_server_is_signed_with_its_key(vm):
    user, running = vm
    service = f"blog{secrets.token_hex(3)}"
    write_project(user, service, extra="cluster: vm\nsecret: s3cret-of-the-service\n")

    listed = user.run("servers", "--json")
    assert listed.json()["servers"][0]["status"] == "healthy"

    deployed = user.run("deploy")

    assert deployed.returncode == 0, deployed.output
    assert "CreateModel Post" in deployed.stdout
    assert f"Endpoint: {running.url}/{service}/dev" in deployed.stdout
    assert project_on(running, user, service) == {"name": service, "stage": "dev"}

    again = user.run("deploy")
    assert again.returncode == 0 and "already up to date" in again.stdout

    info = user.run("info", "--json")
    assert info.json()["deployed"] is True and info.json()["cluster"] == "vm"

    # The token is signed with prisma.yml's secret: the service's API takes it.
    token = user.run("token").stdout.strip()
    endpoint = f"{running.url}/{service}/dev"
    assert query(endpoint, "{ posts { id } }", token) == {"data": {"posts": []}}

    refused = user.run("delete")  # no terminal: it does not ask, it says what to pass
    assert refused.returncode == 1 and "--force" in refused.stderr
    deleted = user.run("delete", "--force")
    assert deleted.returncode == 0, deleted.output
    assert project_on(running, user, service) is None


def test_a_wrong_key_is_refused_with_a_clear_message(vm):
    user, running = vm
    other = user.run("servers", "add", "impostor", running.url)  # a new key, unknown to vm
    assert other.returncode == 0
    service = f"blog{secrets.token_hex(3)}"
    write_project(user, service, extra="cluster: impostor\n")

    refused = user.run("deploy")

    assert refused.returncode == 1
    assert "The server impostor refused the token" in refused.stderr
    assert "is not the one the server trusts" in refused.stderr
    assert project_on(running, user, service) is None


def test_destructive_changes_stop_the_deploy_unless_forced(vm):
    user, running = vm
    service = f"blog{secrets.token_hex(3)}"
    write_project(user, service, extra="cluster: vm\n")
    assert user.run("deploy").returncode == 0
    query(f"{running.url}/{service}/dev", 'mutation { createPost(data: {title: "x"}) { id } }')
    write_project(user, service, extra="cluster: vm\n", datamodel="type Tag {\n  id: ID! @id\n}\n")

    dry = user.run("deploy", "--dry-run", "--json")
    assert dry.returncode == 0, dry.output
    assert {s["type"] for s in dry.json()["steps"]} >= {"CreateModel", "DeleteModel"}

    stopped = user.run("deploy")
    assert stopped.returncode == 1
    assert "Warnings:" in stopped.stdout and "Post" in stopped.stdout
    assert "refract deploy --force" in stopped.stderr
    assert query(f"{running.url}/{service}/dev", "{ posts { title } }")["data"] == {
        "posts": [{"title": "x"}]
    }

    forced = user.run("deploy", "--force")
    assert forced.returncode == 0, forced.output
    assert "DeleteModel Post" in forced.stdout
    user.run("delete", "--force")


def test_a_datamodel_error_names_the_type_and_field(vm):
    user, _ = vm
    write_project(
        user,
        f"blog{secrets.token_hex(3)}",
        extra="cluster: vm\n",
        datamodel="type Post {\n  id: ID! @id\n  author: Writer!\n}\n",
    )

    failed = user.run("deploy")

    assert failed.returncode == 1
    assert "Errors:" in failed.stdout and "Post.author" in failed.stdout
    assert "Fix them in the datamodel" in failed.stderr


def test_the_endpoint_form_and_the_management_secret_win_over_the_session_key(vm):
    user, running = vm
    service = f"blog{secrets.token_hex(3)}"
    (user.project / "datamodel.prisma").write_text(DATAMODEL)
    # Logged in to a console that is not even running: the explicit secret decides.
    registry = user.registry()
    registry["cloudSessionKey"] = "a.session.key"
    user.registry_file.write_text(yaml.safe_dump(registry))
    user.run("servers", "remove", "vm")
    (user.project / "prisma.yml").write_text(
        f"endpoint: {running.url}/{service}/dev\ndatamodel: datamodel.prisma\n"
    )

    without = user.run("deploy")
    assert without.returncode == 1
    assert "refused the token" in without.stderr or "cannot be reached" in without.stderr

    deployed = user.run("deploy", PRISMA_MANAGEMENT_API_SECRET=MANAGEMENT_SECRET)
    assert deployed.returncode == 0, deployed.output
    assert f"Endpoint: {running.url}/{service}/dev" in deployed.stdout
    user.run("delete", "--force", PRISMA_MANAGEMENT_API_SECRET=MANAGEMENT_SECRET)


def test_an_unreachable_server_is_named(make_user):
    user = make_user()
    assert user.run("servers", "add", "vm", closed_port_origin()).returncode == 0
    write_project(user, "blog", extra="cluster: vm\n")

    failed = user.run("deploy")

    assert failed.returncode == 1
    assert "The server vm cannot be reached" in failed.stderr
    assert "Check that it runs" in failed.stderr


def test_an_unknown_cluster_lists_the_known_ones(make_user):
    user = make_user()
    assert user.run("servers", "add", "vm", "http://127.0.0.1:4466").returncode == 0
    write_project(user, "blog", extra="cluster: nope\n")

    failed = user.run("deploy", "--json")

    assert failed.returncode == 1
    assert failed.json()["error"] == "unknown_cluster"
    assert "Known: vm" in failed.json()["message"]


def test_without_a_terminal_a_deploy_without_cluster_names_the_property(make_user):
    user = make_user()
    assert user.run("servers", "add", "vm", "http://127.0.0.1:4466").returncode == 0
    write_project(user, "blog")

    failed = user.run("deploy")

    assert failed.returncode == 1
    assert "Set `cluster:` in prisma.yml to one of: vm" in failed.stderr
    assert "cluster" not in (user.project / "prisma.yml").read_text()


def test_delete_asks_in_a_terminal(vm):
    user, running = vm
    service = f"blog{secrets.token_hex(3)}"
    write_project(user, service, extra="cluster: vm\n")
    assert user.run("deploy").returncode == 0

    def answer(keys: str) -> int:
        child = pexpect.spawn(
            refract_command()[0],
            [*refract_command()[1:], "delete"],
            cwd=str(user.project),
            env=user.env(TERM="xterm"),
            encoding="utf-8",
            timeout=60,
        )
        try:
            child.expect(f"Delete {service}/dev on vm and all its data")
            child.send(keys)
            child.expect(pexpect.EOF)
        finally:
            child.close()
        return child.exitstatus

    assert answer("n") == 1
    assert project_on(running, user, service) == {"name": service, "stage": "dev"}
    assert answer("y") == 0
    assert project_on(running, user, service) is None
