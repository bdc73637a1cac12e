"""The self-hosted server pages with Django's test client: connecting, what the server page
shows to paste, field errors, roles and strangers. Nothing is listening at the endpoints here
and no broker runs: the checks are only queued (test_self_hosted.py runs them)."""

from __future__ import annotations

import html
import json
import re

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from accounts import services as accounts_services
from accounts.models import AuditAction, AuditEvent
from servers import self_hosted
from servers.models import Server
from tests.runtime.conftest import MANAGEMENT_SECRET

pytestmark = pytest.mark.django_db

ENDPOINT = "http://prisma.example.com:4466"


@pytest.fixture
def queued(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        yield callbacks


def connect_url(team) -> str:
    return reverse("servers:connect", args=[team.slug])


def post_connect(client: Client, team, **fields):
    data = {"name": "own", "endpoint": ENDPOINT, "credentials": "key_pair", **fields}
    return client.post(connect_url(team), data)


def pasted(page: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</pre>', page, re.S)
    assert found, f"no {testid} on the page"
    return html.unescape(found.group(1))


def detail(client: Client, server: Server) -> str:
    answer = client.get(reverse("servers:detail", args=[server.workspace.slug, server.id]))
    assert answer.status_code == 200
    return answer.content.decode()


def test_connecting_creates_the_server_and_queues_its_check(
    owner_client, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        answer = post_connect(owner_client, team)

    server = Server.objects.get(workspace=team, name="own")
    assert answer.status_code == 302
    assert answer["Location"] == reverse("servers:detail", args=[team.slug, server.id])
    assert (server.kind, server.status, server.endpoint) == (
        "self_hosted",
        "provisioning",
        ENDPOINT,
    )
    assert "BEGIN PUBLIC KEY" in server.public_key_pem
    assert "PRIVATE KEY" not in server.private_key  # encrypted at rest
    assert "BEGIN PRIVATE KEY" in server.private_key_pem
    assert len(queued) == 1  # the first check, on commit
    created = AuditEvent.objects.get(action=AuditAction.SERVER_CREATED)
    assert created.detail["credentials"] == "key pair" and created.workspace == team


def test_the_server_page_shows_the_public_key_and_the_exact_configuration(
    owner_client, team, queued
):
    post_connect(owner_client, team)
    server = Server.objects.get(workspace=team, name="own")

    page = detail(owner_client, server)

    assert pasted(page, "public-key").strip() == server.public_key_pem.strip()
    from_yaml = yaml.safe_load(pasted(page, "config-yaml"))
    assert from_yaml["managementPublicKey"].strip() == server.public_key_pem.strip()
    assert from_yaml["port"] == 4466 and from_yaml["databases"]["default"]["connector"]
    env = pasted(page, "config-env")
    assert env.startswith("PRISMA_CONFIG='") and env.endswith("'") and "\n" not in env
    assert yaml.safe_load(env[len("PRISMA_CONFIG='") : -1]) == from_yaml  # JSON is YAML
    compose = yaml.safe_load(pasted(page, "config-compose"))
    config = yaml.safe_load(compose["runtime"]["environment"]["PRISMA_CONFIG"])
    assert config == from_yaml
    assert 'data-copy="#sh-config-yaml"' in page and 'data-copy="#sh-config-env"' in page
    assert "PRIVATE KEY" not in page
    assert "checking the server" in page
    assert 'data-testid="check-connection"' in page and 'data-testid="start-rotation"' in page


def test_a_server_connected_with_a_secret_never_shows_it(owner_client, team, queued):
    answer = post_connect(owner_client, team, credentials="secret", secret=MANAGEMENT_SECRET)
    assert answer.status_code == 302
    server = Server.objects.get(workspace=team, name="own")
    assert server.management_secret_value == MANAGEMENT_SECRET
    assert MANAGEMENT_SECRET not in server.management_secret
    assert not server.private_key and not server.public_key_pem

    page = detail(owner_client, server)
    assert MANAGEMENT_SECRET not in page
    assert "Management API secret" in page
    assert 'data-testid="server-configuration"' not in page
    assert 'data-testid="key-rotation"' not in page


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"endpoint": "prisma.example.com"}, "endpoint", "Enter an origin"),
        ({"endpoint": "https://prisma.example.com/management"}, "endpoint", "no path"),
        ({"endpoint": "ftp://prisma.example.com"}, "endpoint", "Enter an origin"),
        ({"endpoint": "http://user:pw@prisma.example.com"}, "endpoint", "credentials"),
        ({"endpoint": ""}, "endpoint", "This field is required"),
        ({"name": "prisma-eu1"}, "name", "the Prisma CLI&#x27;s name for a sandbox region"),
        ({"name": "prisma-us1"}, "name", "the Prisma CLI&#x27;s name for a sandbox region"),
        ({"name": "My Server"}, "name", "valid “slug”"),
        ({"name": ""}, "name", "This field is required"),
        ({"credentials": "secret", "secret": ""}, "secret", "Enter the server&#x27;s management"),
        ({"credentials": "secret", "secret": "short"}, "secret", "at least 8 characters"),
    ],
)
def test_bad_input_gets_field_errors_and_creates_nothing(
    owner_client, team, queued, fields, field, message
):
    answer = post_connect(owner_client, team, **fields)

    assert answer.status_code == 400
    page = answer.content.decode()
    errors = re.search(rf'id="id_{field}_error">(.*?)</div>', page, re.S)
    assert errors and message in errors.group(1), page
    assert not Server.objects.filter(workspace=team).exists()
    if fields.get("endpoint"):
        assert html.escape(fields["endpoint"]) in page  # what was typed stays


def test_a_second_server_with_the_same_name_or_endpoint_is_refused(owner_client, team, queued):
    assert post_connect(owner_client, team).status_code == 302

    same_name = post_connect(owner_client, team, endpoint="http://other.example.com:4466")
    assert same_name.status_code == 400
    assert "This workspace already has a server named own." in same_name.content.decode()
    same_endpoint = post_connect(owner_client, team, name="again", endpoint=ENDPOINT + "/")
    assert same_endpoint.status_code == 400
    assert f"This workspace already connected {ENDPOINT} as own." in (
        same_endpoint.content.decode()
    )
    assert Server.objects.filter(workspace=team).count() == 1


def test_a_trailing_slash_is_not_part_of_the_endpoint(owner_client, team, queued):
    assert post_connect(owner_client, team, endpoint=f" {ENDPOINT}/ ").status_code == 302
    assert Server.objects.get(workspace=team).endpoint == ENDPOINT


def test_the_servers_page_offers_the_form_to_admins_only(owner_client, member_client, team):
    servers = reverse("accounts:servers", args=[team.slug])
    for_owner = owner_client.get(servers).content.decode()
    assert f'href="{connect_url(team)}"' in for_owner
    for_member = member_client.get(servers).content.decode()
    assert connect_url(team) not in for_member
    assert "Only the workspace's owners and admins can connect servers" in html.unescape(for_member)
    form = owner_client.get(connect_url(team))
    assert form.status_code == 200 and 'id="connect-server"' in form.content.decode()


@pytest.fixture
def server(owner, team, queued) -> Server:
    return self_hosted.connect_server(owner.user, team, "own", ENDPOINT)


def actions(team, server: Server) -> list[str]:
    args = [team.slug, server.id]
    return [
        reverse("servers:check", args=args),
        reverse("servers:rotation-start", args=args),
        reverse("servers:rotation-confirm", args=args),
        reverse("servers:rotation-cancel", args=args),
    ]


def test_members_who_are_not_admins_cannot_connect_check_or_rotate(member_client, team, server):
    assert member_client.get(connect_url(team)).status_code == 403
    assert post_connect(member_client, team, name="mine").status_code == 403
    for url in actions(team, server):
        assert member_client.post(url).status_code == 403, url
    page = detail(member_client, server)  # they see it, without the buttons
    assert 'data-testid="check-connection"' not in page and "start-rotation" not in page
    server.refresh_from_db()
    assert not server.next_public_key_pem
    assert Server.objects.filter(workspace=team).count() == 1


def test_strangers_get_404_on_every_page_and_action(outsider_client, team, server):
    assert outsider_client.get(connect_url(team)).status_code == 404
    assert post_connect(outsider_client, team, name="theirs").status_code == 404
    detail_url = reverse("servers:detail", args=[team.slug, server.id])
    assert outsider_client.get(detail_url).status_code == 404
    for url in actions(team, server):
        assert outsider_client.post(url).status_code == 404, url
    server.refresh_from_db()
    assert server.status == Server.Status.PROVISIONING and not server.next_public_key_pem


def test_another_workspaces_server_id_is_404_under_ones_own_workspace(outsider, server, queued):
    theirs = accounts_services.create_workspace(user=outsider.user, name="Rival", slug="rival")
    client = Client()
    client.force_login(outsider.user)
    assert client.get(reverse("servers:detail", args=[theirs.slug, server.id])).status_code == 404
    for url in actions(theirs, server):
        assert client.post(url).status_code == 404, url


def test_check_connection_queues_a_check_of_a_failed_server(
    owner_client, team, server, django_capture_on_commit_callbacks
):
    Server.objects.filter(id=server.id).update(status="failed", status_reason="Key not installed")
    check = reverse("servers:check", args=[team.slug, server.id])

    with django_capture_on_commit_callbacks(execute=False) as queued:
        answer = owner_client.post(check)

    assert answer.status_code == 302
    server.refresh_from_db()
    assert server.status == Server.Status.PROVISIONING and server.attempts == 0
    assert len(queued) == 1
    change = AuditEvent.objects.filter(action=AuditAction.SERVER_STATUS_CHANGED).latest(
        "created_at"
    )
    assert (change.detail["before"], change.detail["after"]) == ("failed", "provisioning")
    # Again while it is being checked: nothing more is queued.
    with django_capture_on_commit_callbacks(execute=False) as again:
        owner_client.post(check)
    assert len(again) == 0


def test_rotation_shows_both_keys_until_confirmed_or_cancelled(owner_client, team, server):
    owner_client.post(reverse("servers:rotation-start", args=[team.slug, server.id]))
    server.refresh_from_db()
    page = detail(owner_client, server)
    keys = pasted(page, "public-key")
    assert keys.count("BEGIN PUBLIC KEY") == 2
    assert keys.index(server.public_key_pem.strip()) < keys.index(
        server.next_public_key_pem.strip()
    )
    config = yaml.safe_load(pasted(page, "config-yaml"))
    assert config["managementPublicKey"].count("BEGIN PUBLIC KEY") == 2
    assert json.loads(pasted(page, "config-env")[len("PRISMA_CONFIG='") : -1]) == config
    assert "PRIVATE KEY" not in page
    assert 'data-testid="confirm-rotation"' in page

    owner_client.post(reverse("servers:rotation-cancel", args=[team.slug, server.id]))
    page = detail(owner_client, server)
    assert pasted(page, "public-key").count("BEGIN PUBLIC KEY") == 1
    assert 'data-testid="start-rotation"' in page
    assert list(
        AuditEvent.objects.filter(action__startswith="server.key")
        .order_by("created_at")
        .values_list("action", flat=True)
    ) == [AuditAction.SERVER_KEY_ROTATION_STARTED, AuditAction.SERVER_KEY_ROTATION_CANCELLED]


def test_confirming_against_a_server_that_is_down_keeps_the_current_key(owner_client, team, server):
    owner_client.post(reverse("servers:rotation-start", args=[team.slug, server.id]))
    Server.objects.filter(id=server.id).update(endpoint="http://127.0.0.1:9")  # nothing there
    server.refresh_from_db()
    current = server.public_key_pem

    answer = owner_client.post(
        reverse("servers:rotation-confirm", args=[team.slug, server.id]), follow=True
    )

    assert "Unreachable" in answer.content.decode()
    server.refresh_from_db()
    assert server.public_key_pem == current and server.next_public_key_pem
