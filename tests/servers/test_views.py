"""The console's Servers tab and a server's page: members see, admins and owners provision."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import services as accounts_services
from servers import services
from servers.models import Server, Service
from tests.conftest import client_for


def servers_url(slug: str = "acme") -> str:
    return reverse("accounts:servers", args=[slug])


def provision_url(slug: str = "acme") -> str:
    return reverse("servers:provision", args=[slug])


def detail_url(server: Server) -> str:
    return reverse("servers:detail", args=[server.workspace.slug, server.id])


def status_url(server: Server) -> str:
    return reverse("servers:status", args=[server.workspace.slug, server.id])


def page(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_an_owner_provisions_a_sandbox_and_lands_on_its_page(two_regions, owner_client, team):
    response = owner_client.post(provision_url(), {"region": "us1"}, follow=True)

    server = Server.objects.get(workspace=team)
    assert server.kind == Server.Kind.SANDBOX and server.region == "us1"
    assert response.redirect_chain[-1][0] == detail_url(server)
    html = page(response)
    assert "Provisioning the sandbox on us1." in html
    assert f'value="{two_regions["us1"]}/acme"' in html  # the endpoint: region origin/slug
    assert "Provisioning" in html and f'data-refresh="{status_url(server)}"' in html
    assert "10 requests per 10 s" in html and "queue of 25" in html and "100 MB" in html


def test_an_admin_provisions_too(two_regions, admin_client, team):
    admin_client.post(provision_url(), {"region": "eu1"})

    assert Server.objects.filter(workspace=team, region="eu1").exists()


def test_the_list_shows_kind_name_endpoint_status_with_reason_and_version(
    two_regions, owner, owner_client, team
):
    failed = services.provision_sandbox(owner.user, team, "eu1")
    services.run_provisioning(str(failed.id))  # nothing listens there: failed, with the reason
    failed.refresh_from_db()

    html = page(owner_client.get(servers_url()))

    row = html.split('data-server="sandbox-eu1"')[1].split("</tr>")[0]
    assert "Sandbox" in row and f"{two_regions['eu1']}/acme" in row
    assert "Failed" in row and "cannot connect" in row
    assert "never" in row  # never seen
    assert detail_url(failed) in row


def test_the_status_fragment_polls_only_while_provisioning(two_regions, owner, owner_client, team):
    server = services.provision_sandbox(owner.user, team, "eu1")
    assert "data-refresh" in page(owner_client.get(status_url(server)))

    services.run_provisioning(str(server.id))

    fragment = page(owner_client.get(status_url(server)))
    assert "data-refresh" not in fragment
    assert "Failed" in fragment and "cannot connect" in fragment


def test_a_region_choice_only_when_several_are_free(two_regions, owner, owner_client, team):
    html = page(owner_client.get(servers_url()))
    assert '<select name="region"' in html and ">eu1<" in html and ">us1<" in html

    services.provision_sandbox(owner.user, team, "eu1")

    html = page(owner_client.get(servers_url()))
    assert '<select name="region"' not in html
    assert '<input type="hidden" name="region" value="us1">' in html


def test_no_configured_region_says_so_and_provisions_nothing(
    settings, platform_keys, owner_client, team
):
    settings.SANDBOX_REGIONS = {}
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem

    html = page(owner_client.get(servers_url()))
    assert "No sandbox regions are configured" in html
    assert "Provision a sandbox</button>" not in html

    response = owner_client.post(provision_url(), {"region": "eu1"}, follow=True)
    assert "No sandbox regions are configured (SANDBOX_REGIONS)." in page(response)
    assert not Server.objects.exists()


def test_a_second_sandbox_on_the_same_region_is_refused_with_the_reason(
    two_regions, owner_client, team
):
    owner_client.post(provision_url(), {"region": "eu1"})

    response = owner_client.post(provision_url(), {"region": "eu1"}, follow=True)

    assert "This workspace already has a sandbox on eu1." in page(response)
    assert Server.objects.filter(workspace=team).count() == 1


@pytest.mark.parametrize("region", ["mars", "", "eu1' OR 1=1 --", "x" * 500, "<script>"])
def test_an_unknown_region_is_refused(two_regions, owner_client, region):
    response = owner_client.post(provision_url(), {"region": region}, follow=True)

    html = page(response)
    assert "No sandbox region named" in html
    assert "<script>”" not in html  # escaped
    assert not Server.objects.exists()


def test_a_member_sees_servers_but_cannot_provision(two_regions, owner, member_client, team):
    server = services.provision_sandbox(owner.user, team, "eu1")

    html = page(member_client.get(servers_url()))
    assert "sandbox-eu1" in html
    assert "Provision a sandbox</button>" not in html
    assert "Only the workspace's owners and admins can provision servers." in html
    assert f"{two_regions['eu1']}/acme" in page(member_client.get(detail_url(server)))

    assert member_client.post(provision_url(), {"region": "us1"}).status_code == 403
    assert not Server.objects.filter(region="us1").exists()


def test_an_outsider_gets_404_everywhere(two_regions, owner, outsider_client, team):
    server = services.provision_sandbox(owner.user, team, "eu1")

    assert outsider_client.get(servers_url()).status_code == 404
    assert outsider_client.get(detail_url(server)).status_code == 404
    assert outsider_client.get(status_url(server)).status_code == 404
    assert outsider_client.post(provision_url(), {"region": "us1"}).status_code == 404
    assert Server.objects.count() == 1


def test_a_server_id_under_another_workspace_of_the_user_is_404(two_regions, owner, owner_client):
    """Two workspaces that look alike, one user in both: each page shows only its own."""
    acme = owner.user.memberships.get(workspace__slug="acme").workspace
    other = accounts_services.create_workspace(user=owner.user, name="Acme Two", slug="acme-two")
    ours = services.provision_sandbox(owner.user, acme, "eu1")
    theirs = services.provision_sandbox(owner.user, other, "eu1")

    wrong = reverse("servers:detail", args=["acme-two", ours.id])
    assert owner_client.get(wrong).status_code == 404
    html = page(owner_client.get(servers_url("acme-two")))
    assert f"{two_regions['eu1']}/acme-two" in html and detail_url(theirs) in html
    assert detail_url(ours) not in html


def test_the_list_does_not_query_per_server(
    two_regions, settings, owner, team, django_assert_max_num_queries
):
    settings.SANDBOX_REGIONS = {**two_regions, "ap1": two_regions["eu1"]}
    client = client_for(owner)
    services.provision_sandbox(owner.user, team, "eu1")
    with django_assert_max_num_queries(100) as one:
        page(client.get(servers_url()))
    services.provision_sandbox(owner.user, team, "us1")
    services.provision_sandbox(owner.user, team, "ap1")

    with django_assert_max_num_queries(len(one.captured_queries)):
        page(client.get(servers_url()))


def test_the_pages_need_a_signed_in_user(two_regions, team):
    response = Client().get(servers_url())

    assert response.status_code == 302 and "/sign-in/" in response["Location"]
    assert Client().post(provision_url(), {"region": "eu1"}).status_code == 302
    assert not Server.objects.exists()


def test_the_server_page_shows_each_services_storage_against_the_cap(
    two_regions, owner, owner_client, member, team
):
    sandbox = services.provision_sandbox(owner.user, team, "eu1")
    Service.objects.create(
        server=sandbox,
        name="blog",
        stage="dev",
        storage_bytes=25 * 1024 * 1024,
        storage_measured_at=timezone.now(),
    )
    Service.objects.create(server=sandbox, name="shop", stage="dev")
    Service.objects.create(server=sandbox, name="gone", stage="dev", status="deleting")

    html = page(owner_client.get(detail_url(sandbox)))

    blog = html.split('data-service="blog/dev"')[1].split("</tr>")[0]
    assert "25.0\xa0MB of 100 MB" in blog and 'value="25"' in blog
    shop = html.split('data-service="shop/dev"')[1].split("</tr>")[0]
    assert "not measured yet" in shop
    assert 'data-service="gone/dev"' not in html
    # A member reads it too.
    assert 'data-service="blog/dev"' in page(client_for(member).get(detail_url(sandbox)))
