"""The console's private-server pages and deleting servers, through Django's test client.

The database checks are real (a PostgreSQL that checks passwords); provisioning and deletion
are only queued here (the unit tests' on-commit callbacks never run them): the end-to-end
tests run them in a worker against the platform runtime.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse

from accounts.models import AuditAction, AuditEvent
from servers import private, services
from servers.models import Server, Service

pytestmark = [pytest.mark.multiprocess]  # the PostgreSQL that checks passwords is a process


def new_url(slug: str = "acme") -> str:
    return reverse("servers:private-new", args=[slug])


def check_url(slug: str = "acme") -> str:
    return reverse("servers:private-test", args=[slug])


def detail_url(server: Server) -> str:
    return reverse("servers:detail", args=[server.workspace.slug, server.id])


def delete_url(server: Server) -> str:
    return reverse("servers:delete", args=[server.workspace.slug, server.id])


def retry_url(server: Server) -> str:
    return reverse("servers:private-retry", args=[server.workspace.slug, server.id])


def form(params, name: str = "shop-db", **changes: object) -> dict[str, object]:
    values = {
        "name": name,
        "host": params.host,
        "port": params.port,
        "database": params.database,
        "user": params.user,
        "password": params.password,
        "sslmode": params.sslmode,
    }
    return {**values, **changes}


def create(owner, team, params, name: str = "shop-db") -> Server:
    return private.create_private_server(owner.user, team, name, params)


# --- creating ------------------------------------------------------------------------------------


def test_an_owner_creates_a_private_server_and_lands_on_its_page(
    private_offered, owner_client, owner, team, user_database, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = owner_client.post(new_url(), form(user_database), follow=True)

    server = Server.objects.get(workspace=team)
    assert len(queued) == 1  # provisioning, queued on commit
    assert response.redirect_chain[-1][0] == detail_url(server)
    assert server.kind == Server.Kind.PRIVATE and server.status == Server.Status.PROVISIONING
    assert server.endpoint == "https://shop-db-acme.servers.example.com"
    assert server.runtime_name == f"s{server.id.hex}"
    assert server.public_key_pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert (server.database_host, server.database_port) == (user_database.host, user_database.port)
    assert (server.database_name, server.database_user) == (user_database.database,) * 2
    # The password is encrypted at rest and comes back only through the model.
    assert user_database.password not in server.database_password
    assert server.database_password_value == user_database.password
    html = response.content.decode()
    assert user_database.password not in html
    assert user_database.database in html and "stored encrypted, never shown" in html
    event = AuditEvent.objects.get(action=AuditAction.SERVER_CREATED)
    assert event.actor == owner.user and event.detail["kind"] == "private"
    assert user_database.password not in str(event.detail)


def test_a_url_does_as_well_as_the_fields(
    private_offered, admin_client, team, user_database, django_capture_on_commit_callbacks
):
    p = user_database
    url = f"postgresql://{p.user}:{p.password}@{p.host}:{p.port}/{p.database}?sslmode=disable"

    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(new_url(), {"name": "from-url", "url": url})

    assert response.status_code == 302
    server = Server.objects.get(workspace=team, name="from-url")
    assert server.database_sslmode == "disable" and server.database_password_value == p.password


def test_a_url_with_a_wrong_password_is_an_error_on_the_url_never_shown_again(
    private_offered, owner_client, user_database
):
    p = user_database
    url = f"postgresql://{p.user}:secret-in-url-77@{p.host}:{p.port}/{p.database}"

    response = owner_client.post(new_url(), {"name": "from-url", "url": url})

    assert response.status_code == 400
    assert "with this password" in response.context["form"].errors["url"][0]
    assert "secret-in-url-77" not in response.content.decode()
    assert not Server.objects.exists()


def test_a_wrong_password_is_a_field_error_and_stores_nothing(
    private_offered, owner_client, team, user_database
):
    response = owner_client.post(new_url(), form(user_database, password="wrong-password-42"))

    assert response.status_code == 400
    html = response.content.decode()
    errors = response.context["form"].errors
    assert "with this password" in errors["password"][0]
    assert "wrong-password-42" not in html  # never echoed, not even the wrong one
    password_input = html.split('name="password"')[1].split(">")[0]
    assert "value=" not in password_input and 'aria-invalid="true"' in password_input
    assert not Server.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.SERVER_CREATED).exists()


def test_a_missing_database_and_a_closed_port_name_their_fields(
    private_offered, owner_client, user_database
):
    missing = owner_client.post(new_url(), form(user_database, database="nope"))
    closed = owner_client.post(new_url(), form(user_database, port=1))

    assert "no database named nope" in missing.context["form"].errors["database"][0]
    assert "connection refused" in closed.context["form"].errors["host"][0]
    assert not Server.objects.exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Enter a name"),
        ("Shop_DB", "lowercase letters, digits and hyphens"),
        ("-shop", "lowercase letters, digits and hyphens"),
        ("prisma-eu1", "the Prisma CLI's name for a sandbox region"),
    ],
)
def test_names_that_cannot_be_a_host_name_are_refused(
    private_offered, owner_client, user_database, name, message
):
    response = owner_client.post(new_url(), form(user_database, name=name))

    assert response.status_code == 400
    assert message in response.context["form"].errors["name"][0]
    assert not Server.objects.exists()


def test_a_name_or_endpoint_taken_is_refused(
    private_offered, settings, owner, team, user_database, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        create(owner, team, user_database)
    with pytest.raises(Exception) as taken:
        create(owner, team, user_database)
    assert "already has a server with this name" in str(taken.value)

    # A template without {server}: one private server in all, whatever its name.
    Server.objects.filter(workspace=team).update(endpoint="http://127.0.0.9:4466")
    settings.PRIVATE_SERVER_ENDPOINT = "http://127.0.0.9:4466"
    with pytest.raises(Exception) as endpoint:
        create(owner, team, user_database, name="another")
    assert "is taken by another private server" in str(endpoint.value)
    assert Server.objects.count() == 1


def test_without_a_platform_runtime_private_servers_are_not_offered(
    settings, owner_client, user_database
):
    settings.PRIVATE_SERVER_RUNTIME = ""

    servers_page = owner_client.get(reverse("accounts:servers", args=["acme"])).content.decode()
    response = owner_client.post(new_url(), form(user_database))

    assert 'data-testid="private-not-offered"' in servers_page
    assert 'data-testid="private-not-offered"' in response.content.decode()
    assert not Server.objects.exists()


def test_the_servers_page_offers_a_new_private_server_to_admins_only(
    private_offered, owner_client, member_client
):
    servers = reverse("accounts:servers", args=["acme"])

    assert new_url() in owner_client.get(servers).content.decode()
    member_page = member_client.get(servers).content.decode()
    assert new_url() not in member_page and "Only the workspace's owners and admins" in member_page


# --- test connection -----------------------------------------------------------------------------


def test_test_connection_answers_a_fragment_for_the_page_script(
    private_offered, owner_client, user_database
):
    ok = owner_client.post(check_url(), form(user_database), HTTP_X_REQUESTED_WITH="fetch")
    bad = owner_client.post(
        check_url(), form(user_database, password="nope-123456"), HTTP_X_REQUESTED_WITH="fetch"
    )

    assert ok.status_code == 200 and bad.status_code == 200
    ok_html, bad_html = ok.content.decode(), bad.content.decode()
    assert ok_html.strip().startswith('<div id="connection-result"')
    assert 'data-ok="1"' in ok_html and "Connected: PostgreSQL" in ok_html
    assert 'data-ok="0"' in bad_html and "with this password" in bad_html
    assert "nope-123456" not in bad_html and user_database.password not in ok_html
    assert not Server.objects.exists()  # testing stores nothing


def test_test_connection_without_script_answers_the_whole_form_without_the_password(
    private_offered, owner_client, user_database
):
    response = owner_client.post(check_url(), form(user_database, database="gone"))

    html = response.content.decode()
    assert 'id="new-private-server"' in html and "no database named gone" in html
    assert f'value="{user_database.host}"' in html  # what was typed stays
    assert user_database.password not in html


# --- the server's page and deleting --------------------------------------------------------------


@pytest.fixture
def private_server(private_offered, owner, team, user_database, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        return create(owner, team, user_database)


def test_the_page_shows_the_database_but_never_the_password(
    private_server, member_client, user_database
):
    html = member_client.get(detail_url(private_server)).content.decode()

    assert 'data-testid="private-database"' in html
    assert private_server.endpoint in html and user_database.user in html
    assert user_database.password not in html
    assert 'data-testid="delete-server"' not in html  # a member cannot delete


def test_deleting_asks_for_the_typed_name(private_server, owner_client):
    response = owner_client.post(delete_url(private_server), {"confirm": "shop"}, follow=True)

    assert "Type the server&#x27;s name, shop-db, to delete it." in response.content.decode()
    private_server.refresh_from_db()
    assert private_server.status == Server.Status.PROVISIONING


def test_deleting_moves_the_server_to_deleting_and_queues_the_removal(
    private_server, owner, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = owner_client.post(
            delete_url(private_server), {"confirm": "shop-db", "drop_schemas": "1"}
        )

    assert response.status_code == 302
    assert len(queued) == 1
    private_server.refresh_from_db()
    assert private_server.status == Server.Status.DELETING and private_server.delete_schemas
    event = AuditEvent.objects.get(action=AuditAction.SERVER_DELETE_REQUESTED)
    assert event.actor == owner.user and event.detail["drop_schemas"] is True
    # Asked twice: one deletion.
    with django_capture_on_commit_callbacks(execute=False) as again:
        services.delete_server(owner.user, private_server)
    assert again == []


def test_the_schemas_stay_unless_the_box_is_ticked(
    private_server, owner_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        owner_client.post(delete_url(private_server), {"confirm": "shop-db"})

    private_server.refresh_from_db()
    assert private_server.status == Server.Status.DELETING and not private_server.delete_schemas


def test_a_self_hosted_server_is_deleted_from_the_console_only(owner, team):
    server = Server.objects.create(
        workspace=team, kind=Server.Kind.SELF_HOSTED, name="mine", endpoint="http://127.0.0.1:1"
    )
    Service.objects.create(server=server, name="blog", stage="dev")

    services.delete_server(owner.user, server, drop_schemas=True)
    assert services.run_deletion(str(server.id)) == "deleted"

    assert not Server.objects.filter(id=server.id).exists()
    assert not Service.objects.filter(name="blog").exists()
    done = AuditEvent.objects.get(action=AuditAction.SERVER_DELETED)
    assert done.workspace == team and done.detail["dropped"] == []
    assert services.run_deletion(str(server.id)) == "skipped"  # idempotent


def test_a_sandbox_is_not_deleted_here(two_regions, owner, team, owner_client):
    sandbox = services.provision_sandbox(owner.user, team, "eu1")

    with pytest.raises(Exception, match="not deleted"):
        services.delete_server(owner.user, sandbox)
    html = owner_client.get(detail_url(sandbox)).content.decode()
    assert 'data-testid="delete-server"' not in html


def test_a_deletion_that_cannot_reach_the_runtime_waits_for_the_reaper(
    private_server, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.delete_server(owner.user, private_server)

    assert services.run_deletion(str(private_server.id)) == "retry"

    private_server.refresh_from_db()
    assert private_server.status == Server.Status.DELETING
    assert "the platform runtime cannot be reached" in private_server.status_reason
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.reap_deletions() == 0  # not yet: it was tried a moment ago
    assert queued == []
    later = private_server.updated_at + timedelta(seconds=settings.SERVER_STALE_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.reap_deletions(now=later) == 1
    assert len(queued) == 1


def test_a_failed_private_server_is_provisioned_again(
    private_server, private_offered, owner_client, django_capture_on_commit_callbacks
):
    assert services.run_provisioning(str(private_server.id)) == Server.Status.FAILED
    private_server.refresh_from_db()
    assert "the platform runtime cannot be reached" in private_server.status_reason
    assert "Connection refused" in private_server.status_reason
    assert private_offered not in private_server.status_reason  # the platform's own address
    assert "Provision again" in owner_client.get(detail_url(private_server)).content.decode()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        owner_client.post(retry_url(private_server))

    private_server.refresh_from_db()
    assert private_server.status == Server.Status.PROVISIONING and len(queued) == 1


# --- who may -----------------------------------------------------------------------------------


def test_a_member_can_neither_create_nor_delete(private_server, member_client, member, team):
    assert member_client.get(new_url()).status_code == 403
    assert member_client.post(check_url(), {}).status_code == 403
    assert member_client.post(delete_url(private_server), {"confirm": "shop-db"}).status_code == 403
    assert member_client.post(retry_url(private_server)).status_code == 403
    with pytest.raises(Exception, match="Only admins and owners"):
        services.delete_server(member.user, private_server)
    private_server.refresh_from_db()
    assert private_server.status == Server.Status.PROVISIONING


def test_a_stranger_gets_404_everywhere(private_server, outsider_client):
    for url in (new_url(), detail_url(private_server)):
        assert outsider_client.get(url).status_code == 404
    for url in (check_url(), delete_url(private_server), retry_url(private_server)):
        assert outsider_client.post(url, {"confirm": "shop-db"}).status_code == 404
    private_server.refresh_from_db()
    assert private_server.status == Server.Status.PROVISIONING


def test_the_health_check_names_the_endpoint_not_the_platforms_address(
    private_server, private_offered
):
    Server.objects.filter(id=private_server.id).update(status=Server.Status.HEALTHY)

    assert services.check_servers() == {"lost": 1}

    private_server.refresh_from_db()
    assert private_server.status == Server.Status.UNREACHABLE
    assert private_server.endpoint in private_server.status_reason
    assert private_offered not in private_server.status_reason


def test_an_operator_sees_a_private_servers_database_but_not_its_password(private_server):
    from accounts.models import User
    from tests.conftest import Persona, client_for

    operator = User.objects.create_superuser("ops@example.com", "pw-ops-123456", name="Ops")

    page = client_for(Persona(operator)).get(f"/admin/servers/server/{private_server.pk}/change/")

    html = page.content.decode()
    assert page.status_code == 200 and private_server.database_name in html
    assert private_server.database_password not in html
    assert private_server.database_password_value not in html
