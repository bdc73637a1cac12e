"""Private and self-hosted servers in Chromium, at a person's pace, with a real Celery worker,
the platform runtime and a self-hosted runtime as real processes, and a PostgreSQL that checks
passwords (the user's own database).

- Private: test a connection with a mistyped password (the page says why), fix it, create the
  server, watch it become healthy, deploy a service to it, query the endpoint, find the rows in
  the user's database, delete the server and find the data still there.
- Self-hosted: connect a server, paste the configuration the page shows into a runtime the
  person starts, check the connection, find the services it already had, rotate its key pair
  (the configuration with both keys, a restart, the confirmation) and deploy after that.
"""

from __future__ import annotations

import secrets

import pytest
import yaml
from playwright.sync_api import Page, expect

from servers import tokens
from servers.management_api import ManagementClient, PrismaError
from servers.models import Deploy, Server, Service
from tests.browser.test_servers import PAUSE, sign_in
from tests.browser.test_services import run_page_curl, wait_for_deploy
from tests.runtime.conftest import free_port, run_runtime
from tests.support.worker import celery_worker, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
]


def create_blog_service(page: Page, server: Server) -> str:
    """New service from the blog starter on the server; the token the page shows once."""
    page.goto("/w/acme/services/new/")
    page.wait_for_timeout(PAUSE)
    page.get_by_label("Server").select_option(str(server.id))
    page.get_by_label("Name").fill("blog")
    page.get_by_label("Blog").check()
    page.wait_for_timeout(PAUSE)
    page.get_by_role("button", name="Create and deploy").click()
    wait_for_deploy(page)
    return page.get_by_label("Service token").input_value()


def test_a_private_server_on_the_users_own_database(
    new_page, team, owner, private_platform, user_database, password_postgres
):
    page = new_page()
    sign_in(page, owner.email)
    page.goto("/w/acme/servers/")
    page.wait_for_timeout(PAUSE)
    page.get_by_role("link", name="New private server").click()
    page.get_by_label("Name").fill("appdb")
    page.get_by_label("Host").fill(user_database.host)
    page.get_by_label("Port").fill(str(user_database.port))
    page.get_by_label("Database", exact=True).fill(user_database.database)
    page.get_by_label("User").fill(user_database.user)
    page.get_by_label("Password").fill(user_database.password + "-typo")
    page.get_by_label("SSL mode").select_option("disable")
    page.wait_for_timeout(PAUSE)

    page.get_by_role("button", name="Test connection").click()

    result = page.get_by_test_id("connection-result")
    expect(result).to_contain_text("password", timeout=15_000)
    expect(result.locator("[data-ok='0']")).to_be_visible()
    assert not Server.objects.filter(kind=Server.Kind.PRIVATE).exists()
    page.wait_for_timeout(PAUSE)  # the person reads the reason and fixes the password
    page.get_by_label("Password").fill(user_database.password)
    page.get_by_role("button", name="Test connection").click()
    expect(result.locator("[data-ok='1']")).to_be_visible(timeout=15_000)
    page.wait_for_timeout(PAUSE)

    with celery_worker():
        page.get_by_role("button", name="Create private server").click()
        expect(page.get_by_test_id("status")).to_have_text("Healthy", timeout=30_000)
        server = Server.objects.get(kind=Server.Kind.PRIVATE)
        assert server.database_password_value == user_database.password
        assert user_database.password not in page.content()

        token = create_blog_service(page, server)
        answer = run_page_curl(
            page,
            token,
            'mutation { createUser(data: {email: "ada@example.com", name: "Ada"}) { id } }',
        )
        assert answer["data"]["createUser"]["id"], answer
        # The row is in the user's database, in the service's own schema.
        with password_postgres.connect(user_database.database) as conn:
            rows = conn.execute('SELECT email FROM "blog$dev"."User"').fetchall()
        assert rows == [("ada@example.com",)]

        page.goto(f"/w/acme/servers/{server.id}/")
        page.wait_for_timeout(PAUSE)
        page.get_by_label("Type appdb to confirm").fill("appdb")
        page.get_by_role("button", name="Delete server").click()
        assert wait_until(lambda: not Server.objects.filter(id=server.id).exists(), timeout=30)

    # The endpoint no longer answers; the user's data stays where it was.
    gone = ManagementClient(private_platform, timeout=10)
    with pytest.raises(PrismaError, match="Unknown host"):
        gone.server_info()
    assert "blog$dev" in password_postgres.schemas(user_database)
    assert not Service.objects.filter(server_id=server.id).exists()


DATAMODEL = "type Note {\n  id: ID! @id\n  text: String!\n}\n"


def configuration_on_page(page: Page) -> dict:
    return yaml.safe_load(page.get_by_test_id("config-yaml").inner_text())


def test_a_self_hosted_server_connected_by_key_pair_then_rotated(
    new_page, team, owner, database, tmp_path
):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    page = new_page()
    sign_in(page, owner.email)
    page.goto("/w/acme/servers/")
    page.wait_for_timeout(PAUSE)
    page.get_by_role("link", name="Connect a server").click()
    page.get_by_label("Name").fill("vm")
    page.get_by_label("Endpoint").fill(endpoint)
    page.wait_for_timeout(PAUSE)

    with celery_worker():
        page.get_by_role("button", name="Connect the server").click()
        # Nothing listens yet: the first check fails and says so.
        expect(page.get_by_test_id("status")).to_have_text("Failed", timeout=30_000)
        config = configuration_on_page(page)
        assert "BEGIN PUBLIC KEY" in config["managementPublicKey"]
        page.wait_for_timeout(PAUSE)  # the person copies it into their server's config

        # Their server, configured with what the page showed (their own port and database),
        # already holds a service.
        mine = {**config, "databases": {"default": database.prisma_config()}}
        server = Server.objects.get(kind=Server.Kind.SELF_HOSTED)
        existing = f"notes{secrets.token_hex(3)}"
        with run_runtime(mine, tmp_path, port=port) as running:
            admin = ManagementClient(running.url, tokens.server_token(server))
            admin.add_project(existing, "dev")
            admin.deploy(existing, "dev", DATAMODEL)

            page.get_by_test_id("check-connection").click()
            expect(page.get_by_test_id("status")).to_have_text("Healthy", timeout=30_000)
            expect(page.get_by_test_id("server-services")).to_contain_text(existing)

            # Rotation: the page shows both keys; the person restarts the server with them.
            page.wait_for_timeout(PAUSE)
            page.get_by_test_id("start-rotation").click()
            both = configuration_on_page(page)
            assert both["managementPublicKey"].count("BEGIN PUBLIC KEY") == 2
        with run_runtime({**both, "databases": mine["databases"]}, tmp_path, port=port):
            page.wait_for_timeout(PAUSE)
            page.get_by_test_id("confirm-rotation").click()
            expect(page.get_by_test_id("key-rotation")).not_to_contain_text(
                "A new key pair was generated"
            )
            server.refresh_from_db()
            assert server.public_key_pem.strip() in both["managementPublicKey"]
            assert not server.next_public_key_pem

            # Deploys go on with the new key.
            create_blog_service(page, server)
            assert Deploy.objects.filter(
                service__server=server, status=Deploy.Status.SUCCEEDED
            ).exists()
            ManagementClient(endpoint, tokens.server_token(server)).delete_project("blog", "dev")
