"""Schemathesis fuzzes every REST endpoint from the API's own OpenAPI schema.

Real HTTP against the live console (loopback only), authenticated with a fresh session key for
each example, as a member of Acme and as an outsider. Every answer must be documented (status,
content type, body), never a 5xx, and an outsider's answers never carry Acme's data.
"""

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts import session_keys
from accounts.models import SessionKey

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 10  # per operation and mode (valid, invalid): bounded, about a minute in all


# The schema exactly as the console serves it at /api/schema/ (built without the database).
# Loaded at collection, not from a live-server fixture: schemathesis's lazy loader does not
# work with pytest 9.
schema = schemathesis.openapi.from_dict(
    Client(HTTP_HOST="localhost")
    .get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    .json()
)

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def fresh_key(persona) -> dict:
    _key, token = session_keys.issue(persona.user, name="fuzz", origin=SessionKey.Origin.API)
    return {"Authorization": f"Bearer {token}"}


def acme_secrets(team) -> list[str]:
    """Strings only a member of Acme may ever see."""
    values = [str(team.id), team.name, '"acme"']
    for membership in team.memberships.select_related("user"):
        values += [membership.user.email, str(membership.user.id)]
        values += [str(key.id) for key in membership.user.session_keys.all()]
    return values


def validate(case, response) -> None:
    assert response.status_code < 500, response.text
    excluded = []
    if case.path == "/api/v1/cli-login/poll":
        # A well-formed but unknown device code is refused with 400 `invalid_grant`, as RFC 8628
        # requires: "valid data must be accepted" cannot hold for a secret nobody was given.
        excluded.append(positive_data_acceptance)
    case.validate_response(response, excluded_checks=excluded)


@schema.parametrize()
@FUZZ
def test_the_api_as_a_member(case, live_server, member, team):
    response = case.call(base_url=live_server.url, headers=fresh_key(member))

    validate(case, response)


@schema.parametrize()
@FUZZ
def test_the_api_as_an_outsider_never_shows_another_workspace(case, live_server, outsider, team):
    fresh_key(outsider)  # a key of the outsider's that may be listed
    response = case.call(base_url=live_server.url, headers=fresh_key(outsider))

    validate(case, response)
    leaked = [value for value in acme_secrets(team) if value in response.text]
    assert not leaked, f"{case.method} {case.formatted_path} showed {leaked}"
