"""Servers are reached only through the user's memberships; only admins and owners create them."""

import uuid

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from accounts.models import AuditAction, AuditEvent
from servers import services
from servers.models import Server, get_server, validate_origin


@pytest.fixture
def sandbox(regions, team, owner, django_capture_on_commit_callbacks) -> Server:
    with django_capture_on_commit_callbacks(execute=False):
        return services.provision_sandbox(owner.user, team, "local")


def test_an_owner_provisions_a_sandbox_on_a_region(sandbox, team, owner, regions):
    assert sandbox.status == Server.Status.PROVISIONING
    assert sandbox.endpoint == regions["local"]
    assert sandbox.service_origin == f"{regions['local']}/acme"
    assert sandbox.project_name("blog") == "acme~blog"
    event = AuditEvent.objects.get(action=AuditAction.SERVER_CREATED)
    assert event.workspace == team and event.actor == owner.user
    assert event.detail["server"] == str(sandbox.id)


def test_the_public_id_is_random(sandbox):
    assert isinstance(sandbox.pk, uuid.UUID)


def test_a_member_cannot_provision(regions, team, member):
    with pytest.raises(PermissionDenied):
        services.provision_sandbox(member.user, team, "local")
    assert not Server.objects.exists()


def test_an_outsider_cannot_provision_in_someone_elses_workspace(regions, team, outsider):
    with pytest.raises(Http404):
        services.provision_sandbox(outsider.user, team, "local")
    assert not Server.objects.exists()


def test_an_outsider_gets_404_for_a_server_that_exists(sandbox, outsider, member):
    with pytest.raises(Http404):
        get_server(outsider.user, "acme", sandbox.id)
    assert not Server.objects.for_user(outsider.user).exists()
    # A member sees it (members deploy; they only cannot create or delete servers).
    assert get_server(member.user, "acme", sandbox.id) == sandbox
    assert list(Server.objects.for_user(member.user)) == [sandbox]


def test_a_server_of_another_workspace_is_404_even_for_a_member_of_both(sandbox, outsider, owner):
    from accounts import services as accounts_services

    theirs = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    with pytest.raises(Http404):
        get_server(outsider.user, theirs.slug, sandbox.id)  # right id, wrong workspace
    with pytest.raises(Http404):
        get_server(owner.user, "acme", "not-a-uuid")


def test_one_sandbox_per_region_and_workspace(sandbox, team, owner):
    with pytest.raises(ValidationError, match="already has a sandbox"):
        services.provision_sandbox(owner.user, team, "local")


def test_an_unknown_region_is_a_clear_error(regions, team, owner):
    with pytest.raises(ValidationError, match="No sandbox region named"):
        services.provision_sandbox(owner.user, team, "mars")


def test_without_a_platform_key_provisioning_says_what_is_missing(regions, settings, team, owner):
    settings.PLATFORM_PRIVATE_KEY = ""
    with pytest.raises(Exception, match="PLATFORM_PRIVATE_KEY"):
        services.provision_sandbox(owner.user, team, "local")
    assert not Server.objects.exists()


@pytest.mark.parametrize(
    "value",
    [
        "http://127.0.0.1:4466/acme",
        "http://127.0.0.1:4466/",
        "ftp://example.com",
        "http://user:pw@example.com",
        "http://example.com?x=1",
        "http://example.com:99999",
        "javascript:alert(1)",
        " http://example.com",
    ],
)
def test_an_endpoint_is_an_origin_only(value):
    with pytest.raises(ValidationError):
        validate_origin(value)


def test_origins_are_accepted():
    validate_origin("https://prisma.example.com")
    validate_origin("http://127.0.0.2:4466")
