"""The real Prisma 1 CLI deploys to a private server's endpoint: it finds the server in the
workspace's cluster list, gets a cluster token from our cloud API (signed by the server's own
key) and deploys through the platform runtime; the data lands in the user's database."""

import secrets

import pytest
from psycopg import sql

from servers import private
from servers.models import Server, Service
from tests.compat.test_cloud_api import key_for
from tests.compat.test_clusters import NODE_HOOK, prisma_as
from tests.servers.test_private_servers import call, settled
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.node, pytest.mark.multiprocess]


@pytest.mark.django_db(transaction=True)
def test_the_prisma_cli_deploys_to_a_private_server_with_a_cluster_token(
    private_platform, password_postgres, user_database, team, owner, outsider, live_server, tmp_path
):
    (tmp_path / "hook.js").write_text(NODE_HOOK)
    env = {
        "CLOUD_API_ENDPOINT": f"{live_server.url}/cloud-api",
        "TEST_CLOUD_API": f"{live_server.url}/cloud-api",
        "NODE_OPTIONS": f"--require {tmp_path / 'hook.js'}",
    }
    service = f"blog{secrets.token_hex(3)}"
    with celery_worker():
        server = settled(private.create_private_server(owner.user, team, "shop", user_database))
        assert server.status == Server.Status.HEALTHY, server.status_reason
        endpoint = f"{server.endpoint}/{service}/dev"

        # An outsider's CLI finds no such cluster in their list and gets no token.
        stranger = prisma_as(tmp_path / "outsider", key_for(outsider), endpoint, ["deploy"], env)
        assert stranger.returncode != 0

        deployed = prisma_as(tmp_path / "owner", key_for(owner), endpoint, ["deploy"], env)

        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "Applying changes" in deployed.stdout
        # The CLI told the console about it (a private cluster): recorded with its history.
        assert wait_until(lambda: Service.objects.filter(server=server, name=service).exists())

    status, answer = call(endpoint, 'mutation { createPost(data: {title: "Hi"}) { id } }')
    assert status == 200 and answer["data"]["createPost"]["id"], answer
    with password_postgres.connect(user_database.database) as conn:
        titles = conn.execute(
            sql.SQL("SELECT title FROM {}.{}").format(
                sql.Identifier(f"{service}$dev"), sql.Identifier("Post")
            )
        ).fetchall()
    assert titles == [("Hi",)]
