"""The console's services and deploys: the Services tab, the new service form, a service's page
and a deploy's page, against a sandbox on the running region (our runtime as a real process).

The deploy task's on-commit enqueue never runs in these tests (the test transaction does not
commit); each test runs `runs.run_deploy` in-process where it needs an outcome, exactly as the
worker would.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse

from accounts import services as accounts_services
from accounts.models import AuditAction, AuditEvent
from servers import deploys, runs, services
from servers.history import describe_step
from servers.models import Deploy, Server, Service
from servers.starters import get_starter
from tests.conftest import client_for
from tests.servers.conftest import empty_region

BLANK = get_starter("blank").datamodel
BLOG = get_starter("blog").datamodel


@pytest.fixture
def sandbox(regions, platform_keys, team, owner) -> Server:
    """Acme's healthy sandbox on `local` (the running region), emptied of earlier tests'
    services: the region outlives each test's database and every test's workspace is acme."""
    empty_region(regions["local"], platform_keys.private_pem)
    server = services.provision_sandbox(owner.user, team, "local")
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY
    return server


@pytest.fixture
def failed_sandbox(sandbox, owner, team) -> Server:
    """Acme's sandbox on `gone`, where nothing listens: provisioning failed."""
    server = services.provision_sandbox(owner.user, team, "gone")
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    return server


@pytest.fixture
def their_sandbox(sandbox, outsider) -> Server:
    """The outsider's own workspace, Other, with its healthy sandbox on the same region."""
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    server = services.provision_sandbox(outsider.user, other, "local")
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    return server


def services_url(slug: str = "acme") -> str:
    return reverse("accounts:services", args=[slug])


def new_url(slug: str = "acme") -> str:
    return reverse("servers:service-new", args=[slug])


def service_url(service: Service, name: str = "service", slug: str | None = None) -> str:
    return reverse(f"servers:{name}", args=[slug or service.server.workspace.slug, service.id])


def deploy_url(deploy: Deploy, name: str = "deploy", slug: str | None = None) -> str:
    service = deploy.service
    return reverse(
        f"servers:{name}", args=[slug or service.server.workspace.slug, service.id, deploy.id]
    )


def page(response, status: int = 200) -> str:
    assert response.status_code == status, response.status_code
    return response.content.decode()


def create(client: Client, to: Server, **given: object):
    data = {
        "server": str(to.id),
        "name": "blog",
        "stage": "dev",
        "starter": "blog",
        "protect": "on",
        **given,
    }
    return client.post(new_url(to.workspace.slug), {k: v for k, v in data.items() if v is not None})


def latest_deploy(service: Service | None = None) -> Deploy:
    deploys_ = Deploy.objects.filter(service=service) if service else Deploy.objects.all()
    return deploys_.select_related("service__server__workspace").order_by("-created_at").first()


def run(deploy: Deploy) -> Deploy:
    assert runs.run_deploy(str(deploy.id)) in Deploy.FINAL
    deploy.refresh_from_db()
    return deploy


def query(service: Service, text: str, token: str = "") -> dict:
    request = urllib.request.Request(  # noqa: S310 - the region runtime on loopback
        service.endpoint,
        data=json.dumps({"query": text}).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def token_on(html: str) -> str:
    match = re.search(r'<textarea[^>]*id="service-token"[^>]*>([^<]+)</textarea>', html)
    return match.group(1).strip() if match else ""


def live_service(client: Client, server: Server, name: str = "blog", **given: object) -> Service:
    """A service created through the form and deployed by the task; returns it reloaded."""
    assert create(client, server, name=name, **given).status_code == 302
    service = Service.objects.get(server=server, name=name)
    assert run(latest_deploy(service)).status == Deploy.Status.SUCCEEDED
    service.refresh_from_db()
    return service


# --- the Services tab and the new service form ---------------------------------------------------


def test_the_services_tab_offers_a_new_service_when_there_is_none(sandbox, member_client):
    html = page(member_client.get(services_url()))

    assert "No services yet" in html and "coming soon" not in html
    assert f'href="{new_url()}"' in html and 'id="new-service-button"' in html


def test_the_form_offers_the_healthy_servers_starters_and_the_name_budget(
    sandbox, failed_sandbox, owner_client
):
    html = page(owner_client.get(new_url()))

    # Only the healthy sandbox: the failed one on `gone` cannot take a deploy.
    assert f'<option value="{sandbox.id}"' in html and "sandbox-gone" not in html
    budget = deploys.name_budget(sandbox)
    assert budget == 63 - len("acme~") - 1
    assert f'data-name-budget="{budget}"' in html
    assert f"may have <strong data-budget-chars>{budget}</strong> characters together" in html
    for key in ("blank", "blog", "shop"):
        assert f'id="id_starter_{key}"' in html and f'<label for="id_starter_{key}">' in html
    assert re.search(r'id="id_starter_blank"[^>]* checked>', html)
    assert 'id="id_stage" value="dev"' in html
    assert re.search(r'id="id_protect" checked', html)
    assert '<label for="id_name">Name</label>' in html


def test_without_a_healthy_server_the_form_says_to_provision_one(two_regions, owner_client):
    html = page(owner_client.get(new_url()))

    assert 'data-testid="no-healthy-server"' in html and 'id="new-service"' not in html


def test_create_queues_the_first_deploy_and_lands_on_it_with_the_token_shown_once(
    sandbox, owner_client, region
):
    response = create(owner_client, sandbox)

    service = Service.objects.get(server=sandbox, name="blog", stage="dev")
    deploy = latest_deploy(service)
    assert response.status_code == 302 and response["Location"] == deploy_url(deploy)
    assert service.starter == "blog" and service.secret and deploy.datamodel == BLOG
    assert (
        deploy.status == Deploy.Status.QUEUED and deploy.requested_by.email == "owner@example.com"
    )

    html = page(owner_client.get(response["Location"]))
    assert "Service blog/dev created: deploying it now." in html
    assert 'data-deploy-status="queued"' in html
    assert f'data-refresh="{deploy_url(deploy, "deploy-live")}"' in html
    token = token_on(html)
    assert token.count(".") == 2  # a JWT
    assert f'value="{region.url}/acme/blog/dev"' in html  # the endpoint, with a copy button
    assert 'data-copy="#service-endpoint"' in html and 'data-copy="#service-token"' in html
    assert f"Authorization: Bearer {token}" in unescape(html)

    again = page(owner_client.get(response["Location"]))
    assert token_on(again) == "" and token not in again
    assert "Authorization: Bearer &lt;token&gt;" in again
    service_page = page(owner_client.get(service_url(service)))
    assert token not in service_page
    # While the deploy is in flight the service page follows it too.
    assert f'data-refresh="{service_url(service, "service-live")}"' in service_page

    # One click from nothing to a working endpoint: the deploy runs, the example query answers.
    assert run(deploy).status == Deploy.Status.SUCCEEDED
    service_page = page(owner_client.get(service_url(service)))
    assert "data-refresh" not in service_page and 'data-service-status="live"' in service_page
    example = get_starter("blog").example_query
    assert query(service, example, token) == {"data": {"posts": []}}
    refused = query(service, example)
    assert refused.get("errors") and not refused.get("data")


def test_an_unprotected_service_has_no_token_and_its_curl_no_header(sandbox, owner_client):
    create(owner_client, sandbox, protect=None, starter="shop")

    service = Service.objects.get(name="blog")
    assert not service.secret
    html = page(owner_client.get(deploy_url(latest_deploy(service))))
    assert token_on(html) == "" and "Authorization" not in html
    assert 'data-testid="unprotected"' in html
    assert unescape(get_starter("shop").example_query) in unescape(html)
    run(latest_deploy(service))
    assert query(service, get_starter("shop").example_query) == {"data": {"products": []}}


def test_a_member_creates_deploys_and_deletes(sandbox, member_client):
    """Members may do everything with services (only admins and owners manage servers)."""
    service = live_service(member_client, sandbox)
    assert service.status == Service.Status.LIVE
    assert service.created_by.email == "member@example.com"

    datamodel = BLOG + "\ntype Note {\n  id: ID! @id\n  text: String!\n}\n"
    member_client.post(service_url(service, "service-deploy"), {"datamodel": datamodel})
    deploy = run(latest_deploy(service))
    assert deploy.status == Deploy.Status.SUCCEEDED
    assert deploy.requested_by.email == "member@example.com"

    response = member_client.post(service_url(service, "service-delete"), {"confirm": "blog"})
    assert response.status_code == 302
    service.refresh_from_db()
    assert service.status == Service.Status.DELETING


BAD_INPUT = [
    ({"name": ""}, "Give the service a name."),
    ({"name": "   "}, "Give the service a name."),
    ({"name": "cluster"}, "is reserved by Prisma"),
    ({"name": "9lives"}, "Start with a letter"),
    ({"name": "a b"}, "Start with a letter"),
    ({"name": "<script>alert(1)</script>"}, "Start with a letter"),
    ({"name": "x" * 60}, "Too long: on this server a service name and its stage may have 57"),
    ({"name": "x" * 5000}, "Too long"),
    ({"stage": ""}, None),  # the default stage: accepted below, so not in this list's loop
    ({"stage": "prod stage"}, "Start with a letter"),
    ({"stage": "s" * 31}, "up to 30 letters"),
    ({"stage": "import"}, "is reserved by Prisma"),
    ({"starter": "wordpress"}, "Select a valid choice"),
    ({"starter": ""}, "This field is required."),
    ({"server": "not-a-uuid"}, "“not-a-uuid” is not a valid UUID."),
    ({"server": ""}, "This field is required."),
]


def test_bad_input_gets_field_errors_keeps_what_was_typed_and_creates_nothing(
    sandbox, owner_client
):
    for given, message in BAD_INPUT:
        if message is None:
            continue
        html = page(create(owner_client, sandbox, **given), status=400)
        assert message in unescape(html), given
        assert "<script>alert(1)</script>" not in html
        if given.get("name", "").strip():
            assert f'id="id_name" value="{given["name"][:20]}' in unescape(html)
    assert not Service.objects.exists() and not Deploy.objects.exists()


def test_an_empty_stage_is_the_default_one(sandbox, owner_client):
    create(owner_client, sandbox, stage="")

    assert Service.objects.get().stage == "dev"


def test_a_name_taken_on_the_server_is_refused(sandbox, owner_client):
    create(owner_client, sandbox)

    html = page(create(owner_client, sandbox), status=400)

    assert "sandbox-local already has a service blog with stage dev." in html
    assert Service.objects.count() == 1
    assert create(owner_client, sandbox, stage="prod").status_code == 302  # another stage is fine


def test_a_failed_server_or_another_workspaces_server_is_not_a_choice(
    sandbox, failed_sandbox, their_sandbox, owner_client
):
    for server_id in (failed_sandbox.id, their_sandbox.id):
        html = page(create(owner_client, sandbox, server=str(server_id)), status=400)
        assert "Choose one of this workspace&#x27;s healthy servers." in html
    assert not Service.objects.exists()


# --- the Services tab with services ------------------------------------------------------------


def test_the_tab_lists_each_service_with_server_status_revision_last_deploy_and_endpoint(
    sandbox, owner_client, region
):
    live = live_service(owner_client, sandbox, name="shop", starter="shop")
    create(owner_client, sandbox, name="blog")
    queued = latest_deploy(Service.objects.get(name="blog"))

    html = page(owner_client.get(services_url()))

    row = html.split('data-service="shop/dev"')[1].split("</tr>")[0]
    assert "sandbox-local" in row and 'data-service-status="live"' in row
    assert f'<td class="mono">{live.revision}</td>' in row
    assert 'data-deploy-status="succeeded"' in row and f"{region.url}/acme/shop/dev" in row
    assert service_url(live) in row
    row = html.split('data-service="blog/dev"')[1].split("</tr>")[0]
    assert 'data-service-status="new"' in row and 'data-deploy-status="queued"' in row
    assert deploy_url(queued) in row


def test_the_tab_does_not_query_per_service(sandbox, owner_client, django_assert_max_num_queries):
    create(owner_client, sandbox, name="one")
    with django_assert_max_num_queries(100) as one:
        page(owner_client.get(services_url()))
    count = len(one.captured_queries)  # the next request resets the connection's query log
    for name in ("two", "three", "four"):
        create(owner_client, sandbox, name=name)
    with django_assert_max_num_queries(count):
        html = page(owner_client.get(services_url()))
    assert html.count("data-service=") == 4


def test_each_workspace_lists_only_its_own_services(sandbox, their_sandbox, owner_client, outsider):
    create(owner_client, sandbox)
    create(client_for(outsider), their_sandbox, name="blog")

    ours = page(owner_client.get(services_url()))
    other = page(client_for(outsider).get(services_url("other")))

    assert ours.count('data-service="blog/dev"') == 1 and "/other/blog/dev" not in ours
    assert other.count('data-service="blog/dev"') == 1 and "/acme/blog/dev" not in other


# --- the deploy page ---------------------------------------------------------------------------


def test_a_finished_deploy_shows_readable_steps_and_stops_polling(sandbox, owner_client):
    service = live_service(owner_client, sandbox)
    deploy = latest_deploy(service)

    html = page(owner_client.get(deploy_url(deploy)))

    assert 'id="deploy-live"' in html and 'data-deploy-status="succeeded"' in html
    assert "data-refresh" not in html
    steps = html.split('data-testid="deploy-steps">')[1].split("</ol>")[0]
    assert "<li>Create model Post</li>" in steps
    assert "<li>Create field title on Post</li>" in steps
    assert "Create enum Role" in steps and "Create relation" in steps
    assert "Redeploy this revision" not in html  # it is the live revision
    assert 'data-testid="live-revision"' in html
    # The first deploy's diff: everything added, against nothing.
    diff = html.split('data-testid="deploy-diff">')[1].split("</pre>")[0]
    assert '<span class="add">+type Post {</span>' in diff and 'class="del"' not in diff

    fragment = page(owner_client.get(deploy_url(deploy, "deploy-live")))
    assert fragment.startswith('<div id="deploy-live"') and "data-refresh" not in fragment


def test_the_live_fragment_polls_while_queued_and_running(sandbox, owner_client):
    create(owner_client, sandbox)
    deploy = latest_deploy()

    fragment = page(owner_client.get(deploy_url(deploy, "deploy-live")))
    assert 'data-deploy-status="queued"' in fragment and "data-refresh" in fragment
    assert "Cancel deploy" in fragment

    runs.claim(str(deploy.id))  # a worker took it
    fragment = page(owner_client.get(deploy_url(deploy, "deploy-live")))
    assert 'data-deploy-status="running"' in fragment and "data-refresh" in fragment
    assert "Cancel deploy" not in fragment and "data-stuck" not in fragment


def test_a_datamodel_error_is_shown_field_by_field(sandbox, owner_client):
    service = live_service(owner_client, sandbox, starter="blank")

    response = owner_client.post(
        service_url(service, "service-deploy"),
        {"datamodel": "type Item { id: ID! @id\n name: Strin }", "action": "deploy"},
    )
    deploy = run(latest_deploy(service))

    assert response["Location"] == deploy_url(deploy)
    assert deploy.status == Deploy.Status.FAILED and deploy.errors
    html = page(owner_client.get(deploy_url(deploy)))
    table = html.split('data-testid="deploy-errors">')[1].split("</table>")[0]
    error = deploy.errors[0]
    assert f'<td class="mono">{error["type"]}</td>' in table
    assert f'<td class="mono">{error["field"]}</td>' in table
    assert unescape(error["description"]) in unescape(table)
    assert "Deploy anyway" not in html and "Redeploy this revision" not in html


def test_a_dry_run_shows_the_steps_and_changes_nothing(sandbox, owner_client):
    service = live_service(owner_client, sandbox, starter="blank")
    revision = service.revision
    datamodel = BLANK.replace("  note: String\n", "  note: String\n  priority: Int\n")

    response = owner_client.post(
        service_url(service, "service-deploy"), {"datamodel": datamodel, "action": "dry_run"}
    )
    deploy = run(latest_deploy(service))

    assert response["Location"] == deploy_url(deploy) and deploy.dry_run
    html = page(owner_client.get(deploy_url(deploy)))
    assert "<li>Create field priority on Item</li>" in html
    assert "Dry run of blog/dev" in html and "Deploy this datamodel" in html
    service.refresh_from_db()
    assert service.datamodel == BLANK and service.revision == revision


def test_editing_the_datamodel_deploys_a_revision_whose_diff_is_coloured(sandbox, owner_client):
    service = live_service(owner_client, sandbox, starter="blank")
    first = service.revision
    datamodel = BLANK.replace("  note: String\n", "  priority: Int\n")

    owner_client.post(
        service_url(service, "service-deploy"), {"datamodel": datamodel, "action": "deploy"}
    )
    deploy = run(latest_deploy(service))

    assert deploy.status == Deploy.Status.SUCCEEDED and deploy.revision > first
    service.refresh_from_db()
    assert service.datamodel == datamodel and service.revision == deploy.revision
    html = page(owner_client.get(deploy_url(deploy)))
    diff = html.split('data-testid="deploy-diff">')[1].split("</pre>")[0]
    assert '<span class="del">-  note: String</span>' in diff
    assert '<span class="add">+  priority: Int</span>' in diff
    assert f"revision {first}" in html
    steps = html.split('data-testid="deploy-steps">')[1].split("</ol>")[0]
    assert "Delete field note on Item" in steps and "Create field priority on Item" in steps
    # The service page: the textarea holds the new datamodel; the history lists both deploys.
    service_page = page(owner_client.get(service_url(service)))
    assert "  priority: Int" in service_page.split('id="id_datamodel"')[1].split("</textarea>")[0]
    history = service_page.split('data-testid="deploy-history">')[1].split("</table>")[0]
    assert history.count("data-deploy=") == 2 and deploy_url(deploy) in history
    assert "owner@example.com" in history and "Console" in history and " s</td>" in history


def test_redeploy_this_revision_rolls_back(sandbox, owner_client):
    service = live_service(owner_client, sandbox, starter="blank")
    original = latest_deploy(service)
    owner_client.post(
        service_url(service, "service-deploy"),
        {"datamodel": BLANK.replace("  note: String\n", "  priority: Int\n"), "action": "deploy"},
    )
    run(latest_deploy(service))

    response = owner_client.post(deploy_url(original, "deploy-redeploy"))
    rollback = run(latest_deploy(service))

    assert response["Location"] == deploy_url(rollback)
    assert rollback.redeploy_of_id == original.id and rollback.status == Deploy.Status.SUCCEEDED
    service.refresh_from_db()
    assert service.datamodel == BLANK and service.revision == rollback.revision


def test_an_empty_or_huge_datamodel_is_refused_and_kept(sandbox, owner_client):
    service = live_service(owner_client, sandbox, starter="blank")
    count = Deploy.objects.count()
    huge = "type A { id: ID! @id }\n" * 20_000

    for datamodel, message in (
        ("", "The datamodel is empty."),
        ("   \n  ", "The datamodel is empty."),
        (huge, "The datamodel is larger than 256 KB."),
    ):
        for action in ("deploy", "dry_run"):
            response = owner_client.post(
                service_url(service, "service-deploy"), {"datamodel": datamodel, "action": action}
            )
            html = page(response, status=400)
            assert message in html
            typed = html.split('id="id_datamodel"')[1].split("</textarea>")[0]
            assert typed.strip().endswith(datamodel.strip()[-60:])  # what was typed is kept
    assert Deploy.objects.count() == count


def test_data_loss_needs_a_confirmation_then_deploys_with_force(sandbox, owner_client):
    service = live_service(owner_client, sandbox, starter="blank", protect=None)
    assert "errors" not in query(service, 'mutation { createItem(data: {name: "kept"}) { id } }')
    without_note = BLANK.replace("  note: String\n", "")

    owner_client.post(
        service_url(service, "service-deploy"), {"datamodel": without_note, "action": "deploy"}
    )
    refused = run(latest_deploy(service))

    assert refused.status == Deploy.Status.FAILED and refused.warnings and not refused.errors
    html = page(owner_client.get(deploy_url(refused)))
    box = html.split('id="force-deploy"')[1].split("</form>")[0]
    assert "Item.note" in box and "data loss" in box
    assert 'name="confirm_data_loss"' in box and "Deploy anyway (force)" in box
    warnings = html.split('data-testid="deploy-warnings">')[1].split("</table>")[0]
    assert '<td class="mono">note</td>' in warnings

    # Not confirmed: nothing is queued.
    response = owner_client.post(
        deploy_url(refused, "deploy-redeploy"), {"force": "1"}, follow=True
    )
    assert "Tick the box to confirm the data loss" in page(response)
    assert latest_deploy(service) == refused

    response = owner_client.post(
        deploy_url(refused, "deploy-redeploy"), {"force": "1", "confirm_data_loss": "1"}
    )
    forced = run(latest_deploy(service))
    assert response["Location"] == deploy_url(forced)
    assert forced.force and forced.status == Deploy.Status.SUCCEEDED
    service.refresh_from_db()
    assert "note" not in service.datamodel.split("type Item")[1]


def test_a_queued_deploy_can_be_cancelled_a_finished_one_cannot(sandbox, owner_client):
    create(owner_client, sandbox)
    deploy = latest_deploy()

    response = owner_client.post(deploy_url(deploy, "deploy-cancel"), follow=True)

    html = page(response)
    assert "Deploy cancelled." in html and 'data-deploy-status="cancelled"' in html
    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.CANCELLED and "owner@example.com" in deploy.reason
    response = owner_client.post(deploy_url(deploy, "deploy-cancel"), follow=True)
    assert "This deploy already ended (Cancelled)." in page(response)


def test_a_stuck_deploy_says_so_and_can_be_cancelled(sandbox, owner_client, settings):
    create(owner_client, sandbox)
    deploy = latest_deploy()
    runs.claim(str(deploy.id))
    # The worker went quiet: its last heartbeat is older than DEPLOY_STALE_SECONDS.
    Deploy.objects.filter(id=deploy.id).update(
        heartbeat_at=deploy.created_at.replace(year=2000),
        progress_at=deploy.created_at.replace(year=2000),
    )

    html = page(owner_client.get(deploy_url(deploy)))

    assert 'data-stuck="true"' in html and 'data-testid="stuck"' in html
    assert "stopped making progress" in html and 'id="cancel-deploy"' in html
    owner_client.post(deploy_url(deploy, "deploy-cancel"))
    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.CANCELLED


# --- deleting ----------------------------------------------------------------------------------


def test_delete_needs_the_service_name_typed(sandbox, owner_client):
    create(owner_client, sandbox)
    service = Service.objects.get()

    for typed in ("", "blo", "BLOG", "blog/dev", "dev", "x" * 1000):
        response = owner_client.post(service_url(service, "service-delete"), {"confirm": typed})
        html = page(response, 400)
        assert "Type the service&#x27;s name, blog, to delete it." in html
    service.refresh_from_db()
    assert service.status == Service.Status.NEW


def test_deleting_shows_deleting_until_the_service_is_gone(sandbox, owner_client):
    service = live_service(owner_client, sandbox)

    response = owner_client.post(service_url(service, "service-delete"), {"confirm": " blog "})

    assert response["Location"] == service_url(service)
    html = page(owner_client.get(service_url(service)))
    assert 'data-service-status="deleting"' in html and "Deleting blog/dev" in html
    assert f'data-refresh="{service_url(service, "service-live")}"' in html
    assert 'data-gone="This service was deleted."' in html
    assert 'id="edit-datamodel"' not in html and 'id="delete-service"' not in html

    assert runs.run_delete(str(service.id)) == "deleted"
    assert owner_client.get(service_url(service, "service-live")).status_code == 404
    assert 'data-service="blog/dev"' not in page(owner_client.get(services_url()))


# --- who may do what ---------------------------------------------------------------------------


def test_an_outsider_gets_404_on_every_url_and_changes_nothing(
    sandbox, their_sandbox, owner_client, outsider
):
    service = live_service(owner_client, sandbox)
    deploy = latest_deploy(service)
    stranger = client_for(outsider)
    before = (Service.objects.count(), Deploy.objects.count(), service.status)

    for slug in ("acme", "other"):  # acme's ids under acme's slug and under their own
        for url in (
            service_url(service, slug=slug),
            service_url(service, "service-live", slug=slug),
            deploy_url(deploy, slug=slug),
            deploy_url(deploy, "deploy-live", slug=slug),
        ):
            assert stranger.get(url).status_code == 404, url
        for url, data in (
            (service_url(service, "service-deploy", slug=slug), {"datamodel": BLANK}),
            (service_url(service, "service-delete", slug=slug), {"confirm": "blog"}),
            (deploy_url(deploy, "deploy-cancel", slug=slug), {}),
            (
                deploy_url(deploy, "deploy-redeploy", slug=slug),
                {"force": "1", "confirm_data_loss": "1"},
            ),
        ):
            assert stranger.post(url, data).status_code == 404, url
    assert stranger.get(services_url()).status_code == 404
    assert stranger.get(new_url()).status_code == 404
    assert create(stranger, sandbox).status_code == 404

    service.refresh_from_db()
    assert (Service.objects.count(), Deploy.objects.count(), service.status) == before


def test_a_deploy_of_another_service_is_404_under_this_one(sandbox, owner_client):
    blog = live_service(owner_client, sandbox, name="blog")
    shop = live_service(owner_client, sandbox, name="shop")
    theirs = latest_deploy(shop)

    url = reverse("servers:deploy", args=["acme", blog.id, theirs.id])
    assert owner_client.get(url).status_code == 404
    url = reverse("servers:deploy-redeploy", args=["acme", blog.id, theirs.id])
    assert owner_client.post(url).status_code == 404


def test_get_is_not_allowed_on_actions(sandbox, owner_client):
    service = live_service(owner_client, sandbox)
    deploy = latest_deploy(service)

    for url in (
        service_url(service, "service-deploy"),
        service_url(service, "service-delete"),
        deploy_url(deploy, "deploy-cancel"),
        deploy_url(deploy, "deploy-redeploy"),
    ):
        assert owner_client.get(url).status_code == 405


def test_actions_need_the_csrf_token(sandbox, owner, owner_client):
    service = live_service(owner_client, sandbox)
    deploy = latest_deploy(service)
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)
    count = Deploy.objects.count()

    for url, data in (
        (
            new_url(),
            {"server": str(sandbox.id), "name": "other", "stage": "dev", "starter": "blank"},
        ),
        (service_url(service, "service-deploy"), {"datamodel": BLANK}),
        (service_url(service, "service-delete"), {"confirm": "blog"}),
        (deploy_url(deploy, "deploy-redeploy"), {}),
        (deploy_url(deploy, "deploy-cancel"), {}),
    ):
        assert client.post(url, data).status_code == 403, url
    service.refresh_from_db()
    assert Deploy.objects.count() == count and service.status == Service.Status.LIVE


def test_signed_out_visitors_are_sent_to_sign_in(sandbox, owner_client):
    service = live_service(owner_client, sandbox)

    response = Client().get(service_url(service))

    assert response.status_code == 302 and "/sign-in/" in response["Location"]


# --- steps in words ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "words"),
    [
        ({"type": "CreateModel", "name": "Post"}, "Create model Post"),
        ({"type": "DeleteModel", "name": "Post"}, "Delete model Post"),
        (
            {"type": "UpdateModel", "name": "Post", "um_newName": "Article"},
            "Rename model Post to Article",
        ),
        ({"type": "CreateField", "model": "Post", "name": "title"}, "Create field title on Post"),
        ({"type": "DeleteField", "model": "Post", "name": "title"}, "Delete field title on Post"),
        (
            {"type": "UpdateField", "model": "Post", "name": "a", "newName": "b"},
            "Rename field a on Post to b",
        ),
        ({"type": "UpdateField", "model": "Post", "name": "a"}, "Update field a on Post"),
        (
            {"type": "CreateEnum", "name": "Role", "ce_values": ["A", "B"]},
            "Create enum Role (A, B)",
        ),
        (
            {"type": "CreateRelation", "name": "R", "leftModel": "A", "rightModel": "B"},
            "Create relation R between A and B",
        ),
        ({"type": "DeleteRelation", "name": "R"}, "Delete relation R"),
        ({"type": "Mystery", "name": "X"}, "Mystery X"),
        ({}, "Step"),
    ],
)
def test_steps_read_as_sentences(step, words):
    assert describe_step(step) == words


def test_a_lost_token_is_replaced_by_a_new_one_shown_once(sandbox, member_client, outsider_client):
    service = live_service(member_client, sandbox)
    page(member_client.get(service_url(service)))  # the first token was shown and is gone

    response = member_client.post(service_url(service, "service-token"))

    assert response.status_code == 302 and response["Location"] == service_url(service)
    html = page(member_client.get(service_url(service)))
    token = token_on(html)
    assert query(service, "{ posts { id } }", token) == {"data": {"posts": []}}
    assert token_on(page(member_client.get(service_url(service)))) == ""  # once
    assert AuditEvent.objects.filter(action=AuditAction.SERVICE_TOKEN_ISSUED).count() == 1
    # GET does nothing; a stranger gets 404; an unprotected service has no token to give.
    assert member_client.get(service_url(service, "service-token")).status_code == 405
    assert outsider_client.post(service_url(service, "service-token")).status_code == 404
    open_service = live_service(member_client, sandbox, name="open", protect=None)
    member_client.post(service_url(open_service, "service-token"))
    html = page(member_client.get(service_url(open_service)))
    assert token_on(html) == "" and "needs no token" in html
