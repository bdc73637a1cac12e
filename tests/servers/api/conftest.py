"""REST fixtures: clients authenticated with a session key, and two workspaces' sandboxes on the
running region (Acme's and Other's), made healthy by the real provisioning check."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from accounts import services as accounts_services
from accounts import session_keys
from accounts.models import SessionKey
from servers import deploys, services
from servers.models import Server, Service
from tests.servers.conftest import empty_region

BLANK = "type Item {\n  id: ID! @id\n  name: String!\n}\n"


def api(persona) -> Client:
    """A client that sends a fresh session key, as the CLI and scripts do."""
    _key, token = session_keys.issue(persona.user, name="test", origin=SessionKey.Origin.API)
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def post(client: Client, path: str, body: object = None):
    return client.post(path, body if body is not None else {}, content_type="application/json")


@pytest.fixture
def sandboxes(
    regions, platform_keys, team, owner, outsider, django_capture_on_commit_callbacks
) -> Iterator[tuple[Server, Server]]:
    """Acme's and Other's sandboxes on the running region, checked by the provisioning run.
    The region outlives each test's database: it starts and ends empty."""
    empty_region(regions["local"], platform_keys.private_pem)
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    with django_capture_on_commit_callbacks(execute=False):
        ours = services.provision_sandbox(owner.user, team, "local")
        theirs = services.provision_sandbox(outsider.user, other, "local")
    for server in (ours, theirs):
        services.run_provisioning(str(server.id))
        server.refresh_from_db()
    assert (ours.status, theirs.status) == ("healthy", "healthy")
    yield ours, theirs
    empty_region(regions["local"], platform_keys.private_pem)


@pytest.fixture
def their_service(sandboxes, outsider, django_capture_on_commit_callbacks) -> Service:
    """Other's service, queued but never run: its ids are what an outsider to Acme holds."""
    _, theirs = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        return deploys.create_service(outsider.user, theirs, "blog", "dev", BLANK).service
