"""Every workspace-scoped page answers a stranger exactly as it answers a missing workspace."""

import re
import uuid

import pytest
from django.urls import URLPattern, get_resolver

from accounts.models import Membership


def workspace_urls() -> list[str]:
    """Every URL pattern that takes a workspace slug, found from the URL configuration."""
    found = []

    def walk(patterns, prefix=""):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLPattern):
                if "<slug:slug>" in route:
                    route = re.sub(r"<uuid:\w+>", str(uuid.uuid4()), route)  # e.g. a server's
                    found.append("/" + route.replace("<slug:slug>", "{slug}"))
            else:
                walk(pattern.url_patterns, route)

    walk(get_resolver().url_patterns)
    return found


WORKSPACE_URLS = workspace_urls()


def test_the_workspace_scoped_urls_are_all_found():
    assert len(WORKSPACE_URLS) >= 9


@pytest.mark.parametrize("url", WORKSPACE_URLS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_an_outsider_gets_404_like_for_a_missing_workspace(outsider_client, team, url, method):
    members_before = list(Membership.objects.values_list("pk", "role"))

    stranger = getattr(outsider_client, method)(url.format(slug="acme"), {"member": 1})
    missing = getattr(outsider_client, method)(url.format(slug="no-such-ws"), {"member": 1})

    assert stranger.status_code == missing.status_code
    # An API resource refuses a method it never offers (405) before looking anything up:
    # the same answer for a stranger and a missing workspace.
    assert stranger.status_code == 404 or (url.startswith("/api/") and stranger.status_code == 405)
    assert b"Acme" not in stranger.content
    assert list(Membership.objects.values_list("pk", "role")) == members_before


@pytest.mark.parametrize("url", WORKSPACE_URLS)
def test_a_signed_out_visitor_is_sent_to_sign_in(client, team, url):
    response = client.get(url.format(slug="acme"))

    if url.startswith("/api/"):  # the REST API asks for credentials instead
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"
        return
    assert response.status_code in (302, 405)
    if response.status_code == 302:
        assert response["Location"].startswith("/sign-in/")


def test_the_audit_trail_is_for_owners_only(owner_client, admin_client, member_client, team):
    url = "/w/acme/audit/"

    assert owner_client.get(url).status_code == 200
    assert admin_client.get(url).status_code == 403
    assert member_client.get(url).status_code == 403
