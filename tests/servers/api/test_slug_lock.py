"""A workspace keeps its slug (issue 11): the slug is in every endpoint of its services
(`<region>/<workspace>/<service>/<stage>`) and in their project ids, so renaming it would cut
every client off.

No path changes a slug: the console renames the name only (`accounts.services.rename_workspace`
takes no slug), the API has no operation that takes one, and the Django admin has no workspace
page. These tests pin that, so a path added later has to face the question.
"""

from django.test import Client
from django.urls import reverse

from accounts.models import Workspace
from servers import deploys
from tests.conftest import client_for, make_user
from tests.servers.api.conftest import BLANK, api


def test_renaming_a_workspace_with_services_in_the_console_keeps_its_slug(
    sandboxes, owner, team, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        service = deploys.create_service(owner.user, ours, "blog", "dev", BLANK).service
    endpoint = service.endpoint
    client = client_for(owner)
    settings_page = reverse("accounts:workspace-settings", args=["acme"])

    response = client.post(settings_page, {"name": "Acme Corp", "slug": "acme-corp"})

    assert response.status_code == 302
    team.refresh_from_db()
    assert (team.name, team.slug) == ("Acme Corp", "acme")
    assert not Workspace.objects.filter(slug="acme-corp").exists()
    service.refresh_from_db()
    assert service.endpoint == endpoint == f"{ours.endpoint}/acme/blog/dev"
    page = client.get(settings_page).content.decode()
    assert "is permanent: it is part of your endpoints" in page


def test_no_api_operation_takes_a_slug(client, team, owner):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]

    bodies = [
        operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        for operations in schema["paths"].values()
        for operation in operations.values()
        if "requestBody" in operation
    ]

    assert bodies  # the walk found the API's bodies
    assert [name for name in bodies if "slug" in components[name].get("properties", {})] == []
    for method in ("put", "patch"):
        answer = getattr(api(owner), method)(
            "/api/v1/workspaces/acme", {"slug": "x"}, content_type="application/json"
        )
        assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert Workspace.objects.get(id=team.id).slug == "acme"


def test_operators_have_no_workspace_page_to_edit_a_slug_in(db):
    operator = make_user("operator@example.com")
    operator.is_staff = operator.is_superuser = True
    operator.save()
    client = Client()
    client.force_login(operator)

    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/accounts/workspace/").status_code == 404
