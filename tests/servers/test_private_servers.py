"""Private servers end to end, real components throughout: the user's PostgreSQL (one that
checks passwords), the platform runtime as a process with its operator API (bound to 127.0.0.1
for its own server and 127.0.0.5 for the private server's endpoint), and a Celery worker.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any

import jwt
import pytest
from django.utils import timezone
from psycopg import sql

from accounts import services as accounts_services
from accounts.models import AuditAction, AuditEvent
from servers import deploys, private, runs, services, tokens
from servers.management_api import PrismaError
from servers.models import Deploy, Server, Service
from tests.runtime.conftest import make_key_pair
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.multiprocess]

NOTES = "type Note {\n  id: ID! @id\n  text: String!\n}\n"
NOTE_TEXTS = "{ notes { text } }"


def call(url: str, document: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        data=json.dumps({"query": document}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def settled(server: Server) -> Server:
    assert wait_until(
        lambda: Server.objects.get(id=server.id).status != Server.Status.PROVISIONING, timeout=60
    )
    server.refresh_from_db()
    return server


def deployed(created: deploys.NewService) -> Service:
    deploy = created.deploy
    assert wait_until(lambda: Deploy.objects.get(id=deploy.id).is_final, timeout=60)
    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.SUCCEEDED, deploy.reason
    created.service.refresh_from_db()
    return created.service


def notes_in(password_postgres, params, schema: str) -> list[str]:
    with password_postgres.connect(params.database) as conn:
        rows = conn.execute(
            sql.SQL("SELECT text FROM {}.{} ORDER BY text").format(
                sql.Identifier(schema), sql.Identifier("Note")
            )
        )
        return [row[0] for row in rows]


@pytest.mark.django_db(transaction=True)
def test_a_private_server_keeps_its_data_in_the_users_database_and_leaves_it_when_deleted(
    private_platform, password_postgres, user_database, team, owner, member
):
    with celery_worker():
        server = private.create_private_server(owner.user, team, "shop", user_database)
        server = settled(server)
        assert server.status == Server.Status.HEALTHY, server.status_reason
        assert server.version and server.last_seen_at

        # A member deploys to it as to a sandbox; the data lands in the user's database.
        created = deploys.create_service(member.user, server, "notes", "dev", NOTES, protect=False)
        service = deployed(created)
        assert service.endpoint == f"{private_platform}/notes/dev"
        status, answer = call(
            service.endpoint, 'mutation { createNote(data: {text: "kept"}) { id } }'
        )
        assert status == 200 and answer["data"]["createNote"]["id"], answer
        assert notes_in(password_postgres, user_database, "notes$dev") == ["kept"]

        # The periodic check reaches it through the platform runtime.
        assert services.check_servers() == {"healthy": 1}

        services.delete_server(owner.user, server)
        assert wait_until(lambda: not Server.objects.filter(id=server.id).exists(), timeout=60)

    # The user's database is untouched: the schema and its data stay.
    assert notes_in(password_postgres, user_database, "notes$dev") == ["kept"]
    assert not Service.objects.filter(id=service.id).exists()
    # The runtime no longer answers the server's host.
    status, answer = call(service.endpoint, "{ notes { id } }")
    assert status == 404 and answer["errors"][0]["message"] == "Unknown host"
    with pytest.raises(PrismaError, match="Unknown host"):
        server.management_client().server_info()
    done = AuditEvent.objects.get(action=AuditAction.SERVER_DELETED)
    assert done.detail == {
        "server": str(server.id), "name": "shop", "kind": "private", "dropped": []
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_deleting_with_the_schemas_dropped_empties_the_users_database_of_them(
    private_platform, password_postgres, user_database, team, owner
):
    with celery_worker():
        server = settled(private.create_private_server(owner.user, team, "shop", user_database))
        assert server.status == Server.Status.HEALTHY, server.status_reason
        for name in ("notes", "diary"):
            service = deployed(
                deploys.create_service(owner.user, server, name, "dev", NOTES, protect=False)
            )
            call(service.endpoint, 'mutation { createNote(data: {text: "gone"}) { id } }')
        assert {"notes$dev", "diary$dev"} <= password_postgres.schemas(user_database)

        services.delete_server(owner.user, server, drop_schemas=True)
        assert wait_until(lambda: not Server.objects.filter(id=server.id).exists(), timeout=60)

    assert not {"notes$dev", "diary$dev"} & password_postgres.schemas(user_database)
    done = AuditEvent.objects.get(action=AuditAction.SERVER_DELETED)
    assert sorted(done.detail["dropped"]) == ["diary/dev", "notes/dev"]
    assert private.operator().get_server(server.runtime_name) is None


def test_a_database_password_changed_before_provisioning_fails_it_with_the_reason(
    private_platform,
    password_postgres,
    user_database,
    team,
    owner,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False):
        server = private.create_private_server(owner.user, team, "shop", user_database)
    with password_postgres.connect() as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD 'changed-behind-our-back'").format(
                sql.Identifier(user_database.user)
            )
        )

    assert services.run_provisioning(str(server.id)) == Server.Status.FAILED

    server.refresh_from_db()
    assert "password authentication failed" in server.status_reason, server.status_reason
    assert user_database.password not in server.status_reason


def test_a_runtime_that_refuses_the_operator_token_fails_provisioning_clearly(
    private_platform, settings, user_database, team, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        server = private.create_private_server(owner.user, team, "shop", user_database)
    settings.PLATFORM_PRIVATE_KEY = make_key_pair().private_pem  # not the key the runtime knows

    assert services.run_provisioning(str(server.id)) == Server.Status.FAILED

    server.refresh_from_db()
    assert "refused the console's operator token" in server.status_reason


def test_no_key_but_the_servers_own_opens_its_management_api(
    private_platform, platform_keys, user_database, team, owner, django_capture_on_commit_callbacks
):
    """A token signed by anyone but the server's own key opens nothing on it, the platform's
    key included (that one only signs operator tokens and sandbox tokens)."""
    with django_capture_on_commit_callbacks(execute=False):
        server = private.create_private_server(owner.user, team, "shop", user_database)
    assert services.run_provisioning(str(server.id)) == Server.Status.HEALTHY
    platform_signed = jwt.encode(
        {"grants": [{"target": "*/*", "action": "*"}], "exp": int(time.time()) + 60},
        platform_keys.private_pem,
        algorithm="RS256",
    )

    with pytest.raises(PrismaError, match=r"3015|token"):
        server.management_client(platform_signed).list_projects()
    assert server.management_client(tokens.server_token(server)).list_projects() == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_deletion_leaves_nothing_stuck(
    private_platform, settings, monkeypatch, silent_server, user_database, team, owner
):
    """The platform runtime hangs while a worker removes the server; the worker is SIGKILLed;
    the reaper queues the deletion again and a new worker finishes it."""
    with celery_worker():
        server = settled(private.create_private_server(owner.user, team, "shop", user_database))
    assert server.status == Server.Status.HEALTHY, server.status_reason
    monkeypatch.setenv("PRIVATE_SERVER_RUNTIME", silent_server)
    monkeypatch.setenv("SERVER_MANAGEMENT_TIMEOUT", "600")

    with celery_worker() as worker:
        services.delete_server(owner.user, server)
        assert wait_until(lambda: Server.objects.get(id=server.id).heartbeat_at is not None)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    stuck = Server.objects.get(id=server.id)
    assert stuck.status == Server.Status.DELETING and stuck.attempts == 1
    assert private.operator().get_server(server.runtime_name) is not None  # still served

    monkeypatch.setenv("PRIVATE_SERVER_RUNTIME", settings.PRIVATE_SERVER_RUNTIME)
    with celery_worker():
        later = timezone.now() + timedelta(seconds=settings.SERVER_STALE_SECONDS + 1)
        assert services.reap_deletions(now=later) == 1
        assert wait_until(lambda: not Server.objects.filter(id=server.id).exists(), timeout=60)

    assert private.operator().get_server(server.runtime_name) is None


def test_a_runtime_without_an_operator_api_fails_provisioning_clearly(
    private_platform,
    settings,
    region,
    user_database,
    team,
    owner,
    django_capture_on_commit_callbacks,
):
    settings.PRIVATE_SERVER_RUNTIME = region.url  # a sandbox region: no `operator` block

    with django_capture_on_commit_callbacks(execute=False):
        server = private.create_private_server(owner.user, team, "shop", user_database)
    assert services.run_provisioning(str(server.id)) == Server.Status.FAILED

    server.refresh_from_db()
    assert server.status_reason == (
        "the platform runtime has no operator API (its config has no `operator` block)"
    )


def query_host(runtime_url: str, endpoint: str, document: str) -> dict[str, Any]:
    """A request to a service endpoint whose host name has no DNS: sent to the runtime's
    address with the endpoint's Host, as a DNS record would route it."""
    parts = urllib.parse.urlsplit(endpoint)
    request = urllib.request.Request(  # noqa: S310 - loopback
        runtime_url + parts.path,
        data=json.dumps({"query": document}).encode(),
        headers={"Content-Type": "application/json", "Host": parts.netloc},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return json.loads(answer.read())


def test_two_workspaces_private_servers_never_meet(
    private_platform,
    settings,
    platform_runtime,
    password_postgres,
    user_database,
    team,
    owner,
    outsider,
    django_capture_on_commit_callbacks,
):
    """Two workspaces, each its own private server on its own database, the same service name
    on both: each endpoint reaches its own data only, and one server's token opens nothing on
    the other."""
    port = platform_runtime.url.rsplit(":", 1)[1]
    settings.PRIVATE_SERVER_ENDPOINT = f"http://{{server}}.servers.test:{port}"
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    theirs_database = password_postgres.create_database()
    try:
        with django_capture_on_commit_callbacks(execute=False):
            ours = private.create_private_server(owner.user, team, "db", user_database)
            theirs = private.create_private_server(outsider.user, other, "db", theirs_database)
        assert (ours.endpoint, theirs.endpoint) == (
            f"http://db-acme.servers.test:{port}",
            f"http://db-other.servers.test:{port}",
        )
        for server, user, text in ((ours, owner, "ours"), (theirs, outsider, "theirs")):
            assert services.run_provisioning(str(server.id)) == Server.Status.HEALTHY
            server.refresh_from_db()
            with django_capture_on_commit_callbacks(execute=False):
                created = deploys.create_service(
                    user.user, server, "notes", "dev", NOTES, protect=False
                )
            assert runs.run_deploy(str(created.deploy.id)) == Deploy.Status.SUCCEEDED
            query_host(
                platform_runtime.url,
                created.service.endpoint,
                f'mutation {{ createNote(data: {{text: "{text}"}}) {{ id }} }}',
            )

        ours_notes = query_host(platform_runtime.url, f"{ours.endpoint}/notes/dev", NOTE_TEXTS)
        theirs_notes = query_host(platform_runtime.url, f"{theirs.endpoint}/notes/dev", NOTE_TEXTS)
        assert ours_notes == {"data": {"notes": [{"text": "ours"}]}}
        assert theirs_notes == {"data": {"notes": [{"text": "theirs"}]}}
        assert notes_in(password_postgres, user_database, "notes$dev") == ["ours"]
        assert notes_in(password_postgres, theirs_database, "notes$dev") == ["theirs"]
        # Our server's own token is worth nothing on theirs.
        with pytest.raises(PrismaError):
            theirs.management_client(tokens.server_token(ours)).list_projects()
    finally:
        password_postgres.drop_database(theirs_database)
