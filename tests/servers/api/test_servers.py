"""Servers over REST: the console's rules, the shared error format, one workspace at a time."""

import pytest
from django.test import Client

from accounts import services as accounts_services
from accounts import session_keys
from accounts.models import SessionKey
from servers import services
from servers.models import Server


def api(persona) -> Client:
    _key, token = session_keys.issue(persona.user, name="test", origin=SessionKey.Origin.API)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def servers_path(slug: str = "acme") -> str:
    return f"/api/v1/workspaces/{slug}/servers"


def test_an_owner_provisions_a_sandbox_and_gets_202_with_the_record(two_regions, owner, team):
    response = api(owner).post(servers_path(), {"region": "eu1"}, content_type="application/json")

    assert response.status_code == 202, response.content
    body = response.json()
    server = Server.objects.get(workspace=team)
    assert body["id"] == str(server.id)
    assert body["kind"] == "sandbox" and body["region"] == "eu1"
    assert body["status"] == "provisioning" and body["status_reason"] == ""
    assert body["endpoint"] == f"{two_regions['eu1']}/acme"
    assert body["limits"] == {"requests": 10, "window_seconds": 10, "queue": 25, "storage_mb": 100}


def test_the_only_region_is_the_default(settings, two_regions, admin, team):
    settings.SANDBOX_REGIONS = {"eu1": two_regions["eu1"]}

    response = api(admin).post(servers_path(), {}, content_type="application/json")

    assert response.status_code == 202, response.content
    assert response.json()["region"] == "eu1"


def test_list_and_detail_show_the_status_with_the_reason(two_regions, owner, member, team):
    server = services.provision_sandbox(owner.user, team, "eu1")
    services.run_provisioning(str(server.id))  # nothing listens there
    client = api(member)

    (listed,) = client.get(servers_path()).json()
    detail = client.get(f"{servers_path()}/{server.id}").json()

    assert listed == detail
    assert detail["status"] == "failed" and "cannot connect" in detail["status_reason"]


def test_a_member_is_refused_with_403(two_regions, member, team):
    response = api(member).post(servers_path(), {"region": "eu1"}, content_type="application/json")

    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "detail": "Only admins and owners can create servers.",
    }
    assert not Server.objects.exists()


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("mars", "No sandbox region named “mars”."),
        ("", "No sandbox region named “”."),  # two regions: the choice is needed
        ("x" * 41, "Ensure this field has no more than 40 characters."),
    ],
)
def test_bad_regions_are_refused_field_by_field(two_regions, owner, team, region, message):
    response = api(owner).post(servers_path(), {"region": region}, content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and body["fields"]["region"] == [message]
    assert not Server.objects.exists()


def test_a_duplicate_sandbox_is_refused(two_regions, owner, team):
    client = api(owner)
    client.post(servers_path(), {"region": "eu1"}, content_type="application/json")

    response = client.post(servers_path(), {"region": "eu1"}, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["fields"]["region"] == ["This workspace already has a sandbox on eu1."]
    assert Server.objects.count() == 1


def test_no_configured_region_is_refused_with_the_reason(settings, platform_keys, owner, team):
    settings.SANDBOX_REGIONS = {}
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem

    response = api(owner).post(servers_path(), {"region": "eu1"}, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["fields"]["region"] == [
        "No sandbox regions are configured (SANDBOX_REGIONS)."
    ]


def test_an_outsider_gets_404_and_sees_nothing(two_regions, owner, outsider, team):
    server = services.provision_sandbox(owner.user, team, "eu1")
    client = api(outsider)

    for response in [
        client.get(servers_path()),
        client.get(f"{servers_path()}/{server.id}"),
        client.post(servers_path(), {"region": "us1"}, content_type="application/json"),
    ]:
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert str(server.id) not in response.content.decode()
    assert Server.objects.count() == 1


def test_each_workspace_lists_only_its_own(two_regions, owner, team):
    other = accounts_services.create_workspace(user=owner.user, name="Acme Two", slug="acme-two")
    ours = services.provision_sandbox(owner.user, team, "eu1")
    theirs = services.provision_sandbox(owner.user, other, "eu1")
    client = api(owner)

    assert [s["id"] for s in client.get(servers_path()).json()] == [str(ours.id)]
    assert [s["id"] for s in client.get(servers_path("acme-two")).json()] == [str(theirs.id)]
    assert client.get(f"{servers_path('acme-two')}/{ours.id}").status_code == 404


def test_without_credentials_it_is_401(two_regions, team):
    assert Client().get(servers_path()).status_code == 401


def test_the_list_does_not_query_per_server(
    settings, two_regions, owner, team, django_assert_max_num_queries
):
    settings.SANDBOX_REGIONS = {**two_regions, "ap1": two_regions["eu1"]}
    client = api(owner)
    services.provision_sandbox(owner.user, team, "eu1")
    with django_assert_max_num_queries(100) as one:
        assert len(client.get(servers_path()).json()) == 1
    services.provision_sandbox(owner.user, team, "us1")
    services.provision_sandbox(owner.user, team, "ap1")

    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(client.get(servers_path()).json()) == 3


def test_the_endpoints_are_in_the_openapi_schema(db):
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    operations = schema["paths"]["/api/v1/workspaces/{slug}/servers"]
    assert {"get", "post"} <= set(operations)
    assert "202" in operations["post"]["responses"]
    assert "get" in schema["paths"]["/api/v1/workspaces/{slug}/servers/{server_id}"]
