"""Self-hosted servers against real ones: our runtime started by the test as a separate process
with the configuration the console showed (or without it), an HTML server, nothing at all.

The check runs once through a real Celery worker (connect, fix, "Check connection") and
otherwise as the task's body (`services.run_provisioning`), as the style guide asks.
"""

from __future__ import annotations

import dataclasses
import html
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import yaml
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from psycopg import sql

from accounts import services as accounts_services
from accounts.models import AuditAction, AuditEvent
from servers import deploys, runs, self_hosted, services, tokens
from servers.management_api import ManagementClient, PrismaError
from servers.models import Deploy, Server, Service
from tests.runtime.conftest import MANAGEMENT_SECRET, Database, free_port, make_key_pair
from tests.servers.conftest import (  # noqa: F401 - fixtures
    closed_port_origin,
    database,
    run_runtime,
)
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.multiprocess]

BLOG = "type Post {\n  id: ID! @id\n  title: String!\n}\n"


# --- a self-hosted server: our runtime on a database of its own ------------------------------


@pytest.fixture
def server_database(database: Database) -> Iterator[Database]:  # noqa: F811
    """A database of the test's own for the self-hosted server: a server's projects are its
    own, and no other test's runtime may list them."""
    own = dataclasses.replace(database, database=f"refract_sh_{secrets.token_hex(5)}")
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(own.database)))
    yield own
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(own.database))
        )


@dataclasses.dataclass
class Host:
    """Where the user runs their server: a fixed port, so it can restart where it was."""

    port: int
    database: Database
    logs: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextmanager
    def run(self, config: dict) -> Iterator[None]:
        """The runtime with this configuration, on this host's database."""
        config = {**config, "databases": {"default": self.database.prisma_config()}}
        with run_runtime(config, self.logs, port=self.port):
            yield


@pytest.fixture
def host(server_database: Database, tmp_path: Path) -> Host:
    return Host(free_port(), server_database, tmp_path)


def pasted(page: str, testid: str) -> str:
    """What a person copies from the server page: the text of a `<pre data-testid=...>`."""
    found = re.search(rf'data-testid="{testid}">(.*?)</pre>', page, re.S)
    assert found, f"no {testid} on the page"
    return html.unescape(found.group(1))


def page_config(client: Client, server: Server) -> dict:
    """The PRISMA_CONFIG the server page shows, as the runtime will read it."""
    page = client.get(reverse("servers:detail", args=[server.workspace.slug, server.id]))
    assert page.status_code == 200
    return yaml.safe_load(pasted(page.content.decode(), "config-yaml"))


def connect(user, workspace, endpoint: str, name: str = "own", **kwargs) -> Server:
    """Connect without a broker: the test runs the check itself (`check_now`)."""
    return self_hosted.connect_server(user, workspace, name, endpoint, **kwargs)


def check_now(server: Server) -> Server:
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    return server


@pytest.fixture
def no_broker(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        yield


def deploy_on_the_server(server_origin: str, token: str, name: str) -> None:
    """A service deployed straight to the server (before it was connected, or by the CLI)."""
    client = ManagementClient(server_origin, token=token, timeout=30)
    client.add_project(name, "dev")
    payload = client.deploy(name, "dev", BLOG)
    assert payload["errors"] == [], payload


def run(deploy: Deploy) -> Deploy:
    runs.run_deploy(str(deploy.id), "test-task")
    deploy.refresh_from_db()
    return deploy


# --- the whole path through a worker ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_server_with_the_key_the_console_showed_is_connected_and_its_services_imported(
    team, owner, host
):
    client = Client()
    client.force_login(owner.user)
    with celery_worker():
        answer = client.post(
            reverse("servers:connect", args=[team.slug]),
            {"name": "own", "endpoint": host.endpoint, "credentials": "key_pair"},
        )
        assert answer.status_code == 302
        server = Server.objects.get(workspace=team, name="own")
        # Nothing listens there yet: the first check fails with the reason and the way out.
        assert wait_until(lambda: Server.objects.get(id=server.id).status == "failed")
        server.refresh_from_db()
        assert server.status_reason.startswith("Unreachable: cannot connect")
        assert host.endpoint in server.status_reason

        # The user pastes the configuration the page shows and starts the server; someone
        # deployed a service there already (a token signed with the console's key).
        config = page_config(client, server)
        assert config["managementPublicKey"].strip() == server.public_key_pem.strip()
        with host.run(config):
            deploy_on_the_server(host.endpoint, tokens.server_token(server), "existing")
            answer = client.post(reverse("servers:check", args=[team.slug, server.id]))
            assert answer.status_code == 302
            assert wait_until(lambda: Server.objects.get(id=server.id).status == "healthy")
            server.refresh_from_db()
            assert server.version and server.last_seen_at and server.status_reason == ""
            existing = Service.objects.get(server=server, name="existing", stage="dev")
            assert existing.origin == Service.Origin.SERVER
            assert existing.status == Service.Status.LIVE and existing.revision == 2
            assert "Post" in existing.datamodel

            # A new service deployed through the console, by the worker, lands on the server.
            created = deploys.create_service(owner.user, server, "blog", "dev", BLOG)
            assert wait_until(lambda: Deploy.objects.get(id=created.deploy.id).is_final)
            deploy = Deploy.objects.get(id=created.deploy.id)
            assert deploy.status == Deploy.Status.SUCCEEDED, deploy.reason
            listed = server.management_client(tokens.server_token(server)).list_projects()
            assert {"name": "blog", "stage": "dev"} in listed

    page = client.get(reverse("accounts:servers", args=[team.slug])).content.decode()
    assert "Self-hosted" in page and host.endpoint in page
    changes = AuditEvent.objects.filter(
        action=AuditAction.SERVER_STATUS_CHANGED, detail__server=str(server.id)
    ).order_by("created_at")
    assert [e.detail["after"] for e in changes] == ["failed", "provisioning", "healthy"]


# --- what goes wrong, said plainly --------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_server_without_the_key_is_key_not_installed(team, owner, host, no_broker):
    with host.run({"managementPublicKey": make_key_pair().public_pem}):
        server = check_now(connect(owner.user, team, host.endpoint))
    assert server.status == Server.Status.FAILED
    assert server.status_reason.startswith(
        "Key not installed: the server does not have this public key: paste the configuration"
        " above and restart it."
    )
    assert not server.services.exists()


@pytest.mark.django_db
def test_a_server_with_only_a_secret_is_key_not_installed(team, owner, host, no_broker):
    with host.run({"managementApiSecret": MANAGEMENT_SECRET}):
        server = check_now(connect(owner.user, team, host.endpoint))
    assert server.status_reason.startswith("Key not installed")


@pytest.mark.django_db
def test_nothing_listening_is_unreachable(team, owner, no_broker):
    endpoint = closed_port_origin()
    server = check_now(connect(owner.user, team, endpoint))
    assert server.status == Server.Status.FAILED
    assert server.status_reason.startswith(f"Unreachable: cannot connect to {endpoint}")


class Html(BaseHTTPRequestHandler):
    def _page(self) -> None:
        status = 404 if self.path != "/" else 200
        body = b"<!doctype html><title>Welcome to nginx!</title><h1>It works</h1>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, *args) -> None:
        pass


class NotGraphql(Html):
    def do_POST(self) -> None:
        body = b'{"status": "ok", "message": "hello"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class BadGateway(Html):
    """A proxy whose Prisma server behind it is down."""

    def do_POST(self) -> None:
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def web_server(handler) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
@pytest.mark.parametrize("handler", [Html, NotGraphql], ids=["html", "json"])
def test_a_web_server_that_is_not_prisma_is_not_a_prisma_server(team, owner, handler, no_broker):
    with web_server(handler) as endpoint:
        server = check_now(connect(owner.user, team, endpoint))
    assert server.status == Server.Status.FAILED
    assert server.status_reason.startswith(
        f"Not a Prisma server: {endpoint} answers, but not as a Prisma management API"
    )


@pytest.mark.django_db
def test_a_proxy_whose_server_is_down_is_unreachable_not_a_stranger(team, owner, no_broker):
    with web_server(BadGateway) as endpoint:
        server = check_now(connect(owner.user, team, endpoint))
    assert server.status == Server.Status.FAILED
    assert server.status_reason.startswith(
        f"Unreachable: {endpoint}/management answered HTTP 502 with a body that is not JSON"
    )


@pytest.mark.django_db
def test_a_server_secured_with_its_secret_is_connected_and_a_wrong_one_is_said(
    team, owner, host, no_broker
):
    with host.run({"managementApiSecret": MANAGEMENT_SECRET}):
        right = check_now(connect(owner.user, team, host.endpoint, secret=MANAGEMENT_SECRET))
        created = deploys.create_service(owner.user, right, "blog", "dev", BLOG)
        assert run(created.deploy).status == Deploy.Status.SUCCEEDED
        wrong = Server.objects.create(
            workspace=team, kind=Server.Kind.SELF_HOSTED, name="wrong", endpoint=host.endpoint
        )
        wrong.set_management_secret("not-the-secret-at-all-0123456789")
        wrong.save()
        wrong = check_now(wrong)
    assert right.status == Server.Status.HEALTHY and right.status_reason == ""
    assert not right.private_key and right.management_secret_value == MANAGEMENT_SECRET
    assert wrong.status == Server.Status.FAILED
    assert wrong.status_reason.startswith(
        "Wrong secret: the server refused a token signed with this management API secret."
    )


@pytest.mark.django_db
def test_a_server_whose_management_api_is_open_is_refused(team, owner, host, no_broker):
    """Anyone could deploy to it or delete its services, another workspace too."""
    with host.run({}):
        server = check_now(connect(owner.user, team, host.endpoint))
    assert server.status == Server.Status.FAILED
    assert server.status_reason.startswith("Management API open:")
    assert "managementPublicKey" in server.status_reason


# --- key rotation -------------------------------------------------------------------------------


@pytest.fixture
def connected(team, owner, host, no_broker, settings) -> Iterator[Server]:
    """A healthy self-hosted server (running) connected with the console's key pair."""
    settings.SERVER_HEALTH_TIMEOUT = 10
    server = connect(owner.user, team, host.endpoint)
    server.config = {"managementPublicKey": server.public_key_pem}
    yield server


@pytest.mark.django_db
def test_confirming_a_rotation_before_the_server_has_the_new_key_changes_nothing(
    team, owner, host, connected
):
    with host.run(connected.config):
        server = check_now(connected)
        assert server.status == Server.Status.HEALTHY
        first_key = server.public_key_pem
        server = self_hosted.start_rotation(owner.user, server)
        assert server.next_public_key_pem and server.next_public_key_pem != first_key

        with pytest.raises(ValidationError, match="does not accept the new key yet"):
            self_hosted.confirm_rotation(owner.user, server)

        server.refresh_from_db()
        assert server.public_key_pem == first_key and server.next_public_key_pem
        # The current key still signs: deploys keep working.
        created = deploys.create_service(owner.user, server, "blog", "dev", BLOG)
        assert run(created.deploy).status == Deploy.Status.SUCCEEDED
    actions = list(
        AuditEvent.objects.filter(action__startswith="server.key").values_list("action", flat=True)
    )
    assert actions == [AuditAction.SERVER_KEY_ROTATION_STARTED]


@pytest.mark.django_db
def test_a_confirmed_rotation_signs_with_the_new_key_and_deploys_keep_working(
    team, owner, host, connected
):
    with host.run(connected.config):
        server = check_now(connected)
        created = deploys.create_service(owner.user, server, "blog", "dev", BLOG)
        assert run(created.deploy).status == Deploy.Status.SUCCEEDED
        old_private = server.private_key_pem
        server = self_hosted.start_rotation(owner.user, server)
        new_public, new_private = server.next_public_key_pem, server.next_private_key_pem
        assert new_private and new_private != old_private
        config = self_hosted.configuration(server)
        assert server.public_key_pem.strip() in config.public_keys
        assert new_public.strip() in config.public_keys
    # The user restarts the server with only the new key (our runtime also takes both).
    with host.run({"managementPublicKey": new_public}):
        server = self_hosted.confirm_rotation(owner.user, server)
        server.refresh_from_db()
        assert server.public_key_pem == new_public and server.private_key_pem == new_private
        assert not server.next_public_key_pem and not server.next_private_key
        assert server.rotation_started_at is None
        again = deploys.request_deploy(
            owner.user, created.service, BLOG + "type Tag {\n  id: ID! @id\n}\n"
        )
        assert run(again).status == Deploy.Status.SUCCEEDED
        assert self_hosted.configuration(server).public_keys.strip() == new_public.strip()
    actions = list(
        AuditEvent.objects.filter(action__startswith="server.key")
        .order_by("created_at")
        .values_list("action", flat=True)
    )
    assert actions == [AuditAction.SERVER_KEY_ROTATION_STARTED, AuditAction.SERVER_KEY_ROTATED]


@pytest.mark.django_db
def test_a_server_given_both_keys_takes_deploys_before_and_after_the_rotation(
    team, owner, owner_client, host, connected
):
    with host.run(connected.config):
        server = check_now(connected)
        created = deploys.create_service(owner.user, server, "blog", "dev", BLOG)
        assert run(created.deploy).status == Deploy.Status.SUCCEEDED
        server = self_hosted.start_rotation(owner.user, server)
    # The user pastes the page's configuration, which carries both keys, and restarts.
    both = page_config(owner_client, server)
    assert both["managementPublicKey"].count("BEGIN PUBLIC KEY") == 2
    with host.run(both):
        tagged = BLOG + "type Tag {\n  id: ID! @id\n}\n"
        before = deploys.request_deploy(owner.user, created.service, tagged)
        assert run(before).status == Deploy.Status.SUCCEEDED  # still the current key
        server = self_hosted.confirm_rotation(owner.user, server)
        server.refresh_from_db()
        assert not server.next_public_key_pem
        labelled = tagged + "type Label {\n  id: ID! @id\n}\n"
        after = run(deploys.request_deploy(owner.user, created.service, labelled))
        assert after.status == Deploy.Status.SUCCEEDED, after.reason  # the new key signs


@pytest.mark.django_db
def test_a_cancelled_rotation_forgets_the_new_key(team, owner, connected):
    server = self_hosted.start_rotation(owner.user, connected)
    again = self_hosted.start_rotation(owner.user, server)  # a second click keeps the first
    assert again.next_public_key_pem == server.next_public_key_pem
    server = self_hosted.cancel_rotation(owner.user, server)
    server.refresh_from_db()
    assert not server.next_public_key_pem and not server.next_private_key
    with pytest.raises(ValidationError, match="No key rotation in progress"):
        self_hosted.confirm_rotation(owner.user, server)


# --- tenancy ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_another_workspace_registering_the_same_endpoint_cannot_reach_its_services(
    team, owner, outsider, host, no_broker
):
    server = connect(owner.user, team, host.endpoint)
    with host.run({"managementPublicKey": server.public_key_pem}):
        server = check_now(server)
        created = deploys.create_service(owner.user, server, "blog", "dev", BLOG)
        assert run(created.deploy).status == Deploy.Status.SUCCEEDED

        theirs = accounts_services.create_workspace(user=outsider.user, name="Rival", slug="rival")
        copy = check_now(connect(outsider.user, theirs, host.endpoint))
        assert copy.public_key_pem != server.public_key_pem
        assert copy.status == Server.Status.FAILED
        assert copy.status_reason.startswith("Key not installed")
        assert not copy.services.exists()
        with pytest.raises(PrismaError) as refused:
            copy.management_client(tokens.server_token(copy)).list_projects()
        assert refused.value.code == 3015
        with pytest.raises(PrismaError):
            copy.management_client(tokens.cluster_token(copy, "blog", "dev")).migration_status(
                "blog", "dev"
            )
