"""Operators see every workspace's servers in Django's admin; nobody else does."""

import pytest
from django.test import Client

from accounts.models import User
from servers import services


@pytest.fixture
def sandbox(regions, team, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        return services.provision_sandbox(owner.user, team, "local")


def test_an_operator_sees_servers_without_their_secrets(sandbox):
    operator = User.objects.create_superuser("ops@example.com", "pw-ops-123456", name="Ops")
    client = Client()
    client.force_login(operator)

    listing = client.get("/admin/servers/server/")
    detail = client.get(f"/admin/servers/server/{sandbox.pk}/change/")

    assert listing.status_code == 200 and "sandbox-local" in listing.content.decode()
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "BEGIN PUBLIC KEY" in page
    assert "PRIVATE KEY" not in page and sandbox.private_key not in page


def test_a_workspace_owner_is_not_an_operator(sandbox, owner_client):
    response = owner_client.get("/admin/servers/server/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
