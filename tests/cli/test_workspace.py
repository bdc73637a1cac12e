"""Deploying to a workspace's server through the console: the real console (`live_server`),
a real Celery worker that runs the Deploy, and the sandbox region (the runtime as a process).
Without `cluster:` the CLI asks in a terminal (driven here through a pseudo-terminal) and
writes the choice into prisma.yml, comments and all; the next deploy does not ask."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request

import pexpect
import pytest

from servers import services
from servers.models import Deploy, Server, Service
from tests.cli.conftest import refract_command
from tests.compat.test_cloud_api import key_for
from tests.servers.conftest import (  # noqa: F401 - the region's fixtures
    database,
    platform_keys,
    region,
    regions,
)
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

DATAMODEL = "type Post {\n  id: ID! @id\n  title: String!\n}\n"
CLUSTER = "acme/sandbox-local"


@pytest.fixture
def sandbox(regions, owner, team, live_server):  # noqa: F811
    """Acme's sandbox on the running region, checked by a real worker that stays up for the
    test's deploys."""
    with celery_worker():
        server = services.provision_sandbox(owner.user, team, "local")
        assert wait_until(lambda: Server.objects.get(id=server.id).status == "healthy")
        yield Server.objects.get(id=server.id)


@pytest.fixture
def olivia(make_user, live_server, owner):
    user = make_user("olivia", console=live_server.url)
    assert user.run("login", "--key", key_for(owner)).returncode == 0
    return user


def query(url: str, document: str, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=json.dumps({"query": document}).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def test_servers_lists_the_workspaces_servers_by_their_cluster_name(
    sandbox,
    olivia,
    region,  # noqa: F811
    team,
):
    assert olivia.run("servers", "add", "vm", "http://127.0.0.1:9").returncode == 0
    Server.objects.create(
        workspace=team,
        kind=Server.Kind.SELF_HOSTED,
        name="vm",
        endpoint="https://prisma.acme.test",
        status=Server.Status.UNREACHABLE,
    )

    listed = olivia.run("servers", "--json")

    assert listed.returncode == 0, listed.output
    found = {s["cluster"]: s for s in listed.json()["servers"]}
    assert found["vm"]["kind"] == "self-hosted" and found["vm"]["source"] == "registry"
    assert found[CLUSTER]["kind"] == "sandbox"
    assert found[CLUSTER]["status"] == "healthy"
    assert found[CLUSTER]["endpoint"] == f"{region.url}/acme"
    assert (found["acme/vm"]["kind"], found["acme/vm"]["status"]) == ("self-hosted", "unreachable")
    assert found["acme/vm"]["endpoint"] == "https://prisma.acme.test"
    table = olivia.run("servers").stdout
    assert CLUSTER in table and "sandbox" in table


def test_a_deploy_with_cluster_runs_in_the_console_and_is_in_its_history(
    sandbox,
    olivia,
    owner,
    region,  # noqa: F811
):
    service = f"blog{secrets.token_hex(3)}"
    (olivia.project / "datamodel.prisma").write_text(DATAMODEL)
    (olivia.project / "prisma.yml").write_text(
        f"service: {service}\nstage: dev\ncluster: {CLUSTER}\ndatamodel: datamodel.prisma\n"
        "secret: only-decides-that-it-is-protected\n"
    )

    started = time.monotonic()
    deployed = olivia.run("deploy")
    elapsed = time.monotonic() - started

    assert deployed.returncode == 0, deployed.output
    endpoint = f"{region.url}/acme/{service}/dev"
    assert f"Endpoint: {endpoint}" in deployed.stdout
    assert "CreateModel Post" in deployed.stdout
    recorded = Service.objects.get(server=sandbox, name=service, stage="dev")
    first = recorded.deploys.get()
    assert (first.status, first.source, first.requested_by) == ("succeeded", "api", owner.user)
    print(f"\nrefract deploy to a sandbox, new service: {elapsed:.2f} s")  # for the report

    token = olivia.run("token").stdout.strip()
    assert query(endpoint, "{ posts { id } }", token) == {"data": {"posts": []}}
    assert "errors" in query(endpoint, "{ posts { id } }")  # protected: no token, no data

    info = olivia.run("info", "--json").json()
    recorded.refresh_from_db()
    assert info["deployed"] is True and info["status"] == "live"
    assert info["revision"] == recorded.revision == first.revision
    assert info["endpoint"] == endpoint and info["kind"] == "sandbox"

    (olivia.project / "datamodel.prisma").write_text(DATAMODEL + "type Tag {\n  id: ID! @id\n}\n")
    started = time.monotonic()
    second = olivia.run("deploy", "--json")
    print(f"refract deploy to a sandbox, one type added: {time.monotonic() - started:.2f} s")
    assert second.returncode == 0, second.output
    assert second.json()["status"] == "succeeded"
    assert second.json()["revision"] == first.revision + 1
    assert recorded.deploys.filter(status="succeeded").count() == 2
    dry = olivia.run("deploy", "--dry-run", "--json")
    assert dry.returncode == 0, dry.output
    assert (dry.json()["status"], dry.json()["steps"]) == ("dry_run", [])
    assert recorded.deploys.filter(dry_run=True).count() == 1

    # Data in Post: removing it is what the server warns about, and only --force deploys it.
    created = query(endpoint, 'mutation { createPost(data: {title: "Hi"}) { id } }', token)
    assert "errors" not in created, created
    (olivia.project / "datamodel.prisma").write_text("type Tag {\n  id: ID! @id\n}\n")
    stopped = olivia.run("deploy")
    assert stopped.returncode == 1
    assert "Warnings:" in stopped.stdout and "Post" in stopped.stdout
    assert "refract deploy --force" in stopped.stderr
    assert query(endpoint, "{ posts { title } }", token) == {"data": {"posts": [{"title": "Hi"}]}}
    forced = olivia.run("deploy", "--force")
    assert forced.returncode == 0, forced.output
    assert "DeleteModel Post" in forced.stdout
    assert recorded.deploys.filter(force=True, status="succeeded").count() == 1

    deleted = olivia.run("delete", "--force")
    assert deleted.returncode == 0, deleted.output
    assert not Service.objects.filter(id=recorded.id).exists()


def test_a_deploy_without_cluster_asks_writes_the_choice_and_then_does_not_ask(
    sandbox,
    olivia,
    region,  # noqa: F811
):
    assert olivia.run("servers", "add", "vm", "http://127.0.0.1:9").returncode == 0
    service = f"shop{secrets.token_hex(3)}"
    (olivia.project / "datamodel.prisma").write_text(DATAMODEL)
    original = (
        "# The shop's API\n"
        f"service: {service}   # its name on the server\n"
        "stage: dev\n"
        "\n"
        "# the types, one file per area\n"
        "datamodel:\n"
        "  - datamodel.prisma\n"
    )
    (olivia.project / "prisma.yml").write_text(original)

    child = pexpect.spawn(
        refract_command()[0],
        [*refract_command()[1:], "deploy"],
        cwd=str(olivia.project),
        env=olivia.env(TERM="xterm"),
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 200),
    )
    try:
        child.expect("Where do you want to deploy")
        child.expect(CLUSTER)
        child.send("\x1b[B")  # the registry's `vm` is first; the sandbox below it
        child.send("\r")
        child.expect(f"Wrote `cluster: {CLUSTER}`")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before

    assert (olivia.project / "prisma.yml").read_text() == original.replace(
        "stage: dev\n", f"stage: dev\ncluster: {CLUSTER}\n"
    )
    recorded = Service.objects.get(server=sandbox, name=service, stage="dev")
    assert recorded.deploys.get().status == Deploy.Status.SUCCEEDED

    again = olivia.run("deploy")  # no terminal: it would fail if it asked

    assert again.returncode == 0, again.output
    assert "Service is already up to date." in again.stdout
    assert recorded.deploys.count() == 2
    assert olivia.run("delete", "--force").returncode == 0


def test_another_workspaces_server_is_unknown_to_an_outsider(
    sandbox, make_user, outsider, live_server
):
    stranger = make_user("otto", console=live_server.url)
    assert stranger.run("login", "--key", key_for(outsider)).returncode == 0
    service = f"blog{secrets.token_hex(3)}"
    (stranger.project / "datamodel.prisma").write_text(DATAMODEL)
    (stranger.project / "prisma.yml").write_text(
        f"service: {service}\ncluster: {CLUSTER}\ndatamodel: datamodel.prisma\n"
    )

    refused = stranger.run("deploy")

    assert refused.returncode == 1
    assert f"Unknown cluster '{CLUSTER}'" in refused.stderr
    assert not Service.objects.filter(name=service).exists()


def test_an_unknown_workspace_server_lists_the_known_names(sandbox, olivia):
    (olivia.project / "datamodel.prisma").write_text(DATAMODEL)
    (olivia.project / "prisma.yml").write_text(
        "service: blog\ncluster: acme/nope\ndatamodel: datamodel.prisma\n"
    )

    failed = olivia.run("deploy")

    assert failed.returncode == 1
    assert f"Unknown cluster 'acme/nope' in prisma.yml. Known: {CLUSTER}." in failed.stderr


def test_a_datamodel_error_comes_back_from_the_worker_with_type_and_field(sandbox, olivia):
    service = f"blog{secrets.token_hex(3)}"
    (olivia.project / "datamodel.prisma").write_text(
        "type Post {\n  id: ID! @id\n  author: Writer!\n}\n"
    )
    (olivia.project / "prisma.yml").write_text(
        f"service: {service}\ncluster: {CLUSTER}\ndatamodel: datamodel.prisma\n"
    )

    failed = olivia.run("deploy")

    assert failed.returncode == 1
    assert "Post.author" in failed.stdout
    assert "Fix them in the datamodel" in failed.stderr
