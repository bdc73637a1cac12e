"""The Prisma CLI's cloud API: GraphQL in, JSON out, exactly the documents the CLI sends."""

import threading
import time

import jwt
import pytest
from django.db import connection
from django.test import Client

from accounts import session_keys
from accounts.models import CliLoginRequest, SessionKey
from tests.conftest import client_for

ME = "{ me { id name login { email } } }"
REQUEST = "mutation { requestCloudToken { secret } }"
POLL = "query ($secret: String!) { cloudTokenRequest(secret: $secret) { secret token } }"
MEMBERSHIPS = (
    "{ me { memberships { workspace { id name slug clusters { id name connectInfo { endpoint } }"
    " services { id name stage cluster { name } } } } } }"
)


def gql(query: str, variables: dict | None = None, token: str | None = None, **extra) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    body = {"query": query, **({"variables": variables} if variables is not None else {})}
    response = Client(**extra).post("/cloud-api", body, content_type="application/json", **headers)
    assert response["Content-Type"].startswith("application/json")
    return {"status": response.status_code, **response.json()}


def key_for(persona) -> str:
    return session_keys.issue(persona.user, name="cli", origin=SessionKey.Origin.CLI_LOGIN)[1]


def test_me_with_a_key(owner):
    answer = gql(ME, token=key_for(owner))

    assert answer["data"]["me"] == {
        "id": str(owner.user.id),
        "name": "Olivia Owner",
        "login": [{"email": "owner@example.com"}],
    }
    assert "errors" not in answer


def test_me_without_or_with_a_bad_key_is_null(owner):
    for token in (None, "undefined", "not-a-jwt"):
        answer = gql(ME, token=token)
        assert answer["status"] == 200
        assert answer["data"] == {"me": None}


def test_me_after_revocation_is_null(owner):
    token = key_for(owner)
    session_keys.revoke(SessionKey.objects.get())

    assert gql(ME, token=token)["data"] == {"me": None}


def test_memberships_list_workspaces_with_empty_clusters_and_services(owner):
    answer = gql(MEMBERSHIPS, token=key_for(owner))

    workspaces = [m["workspace"] for m in answer["data"]["me"]["memberships"]]
    acme = next(w for w in workspaces if w["slug"] == "acme")
    assert acme["name"] == "Acme"
    assert acme["clusters"] == [] and acme["services"] == []


def test_the_browser_login_flow_over_graphql(owner):
    stale = "not-a-jwt"  # the CLI sends a stale key along; it must not matter
    secret = gql(REQUEST, token=stale)["data"]["requestCloudToken"]["secret"]

    first = gql(POLL, {"secret": secret}, token=stale)
    assert first["data"] == {"cloudTokenRequest": {"secret": secret, "token": None}}
    second = gql(POLL, {"secret": secret}, token=stale)  # every second, no slow_down
    assert second["data"]["cloudTokenRequest"]["token"] is None

    client_for(owner).post("/cli-auth", {"secret": secret, "action": "authorize"})
    done = gql(POLL, {"secret": secret}, token=stale)

    token = done["data"]["cloudTokenRequest"]["token"]
    assert jwt.decode(token, options={"verify_signature": False})["userId"] == str(owner.user.id)
    assert gql(ME, token=token)["data"]["me"]["login"] == [{"email": owner.email}]
    assert CliLoginRequest.objects.get().client_name == "Prisma 1 CLI"
    assert SessionKey.objects.get().name == "Prisma 1 CLI from 127.0.0.1"
    reused = gql(POLL, {"secret": secret})
    assert reused["data"]["cloudTokenRequest"] is None
    assert "already used" in reused["errors"][0]["message"]


def test_a_denied_login_is_an_error_the_cli_stops_on(owner):
    secret = gql(REQUEST)["data"]["requestCloudToken"]["secret"]
    client_for(owner).post("/cli-auth", {"secret": secret, "action": "deny"})

    answer = gql(POLL, {"secret": secret})

    assert "denied" in answer["errors"][0]["message"]


def test_renew_token_needs_a_key_and_replaces_it(owner):
    assert gql("mutation { renewToken }")["errors"][0]["message"] == "Not authorized"
    old = key_for(owner)

    new = gql("mutation { renewToken }", token=old)["data"]["renewToken"]

    assert gql(ME, token=new)["data"]["me"] is not None
    assert gql(ME, token=old)["data"]["me"] is None


def test_bad_documents_get_graphql_errors(db):
    syntax = gql("{ me { ")
    unknown = gql("{ you { id } }")
    wrong_type = gql(POLL, {"secret": 42})

    assert syntax["status"] == 400
    assert "Syntax error" in syntax["errors"][0]["message"]
    assert "Cannot query field 'you'" in unknown["errors"][0]["message"]
    assert "errors" in wrong_type and wrong_type["data"] is None


def test_an_oversized_document_is_refused(db):
    too_long = gql("{ me { id } }" + " " * 20_001)

    assert too_long["status"] == 413
    assert "longer than" in too_long["errors"][0]["message"]


def test_not_json_or_a_get_is_a_clear_error(db):
    bad = Client().post("/cloud-api", "nope", content_type="application/json")
    assert bad.status_code == 400
    assert "not valid JSON" in bad.json()["errors"][0]["message"]
    assert Client().get("/cloud-api").status_code == 405


def test_the_cloud_api_is_rate_limited_per_address(db, settings):
    settings.CLOUD_API_RATE_PER_MINUTE = 3
    statuses = [gql(ME, REMOTE_ADDR="192.0.2.1")["status"] for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    assert gql(ME, REMOTE_ADDR="192.0.2.2")["status"] == 200


@pytest.mark.django_db(transaction=True)
def test_a_held_poll_answers_as_soon_as_the_user_authorizes(owner, settings):
    """The long poll: no waiting out the hold once the user has clicked."""
    settings.CLI_LOGIN_HOLD_SECONDS = 60
    secret = gql(REQUEST)["data"]["requestCloudToken"]["secret"]
    answers = []

    def held_poll() -> None:
        try:
            answers.append(gql(POLL, {"secret": secret}))
        finally:
            connection.close()  # this thread's own connection

    poller = threading.Thread(target=held_poll)
    poller.start()
    time.sleep(0.3)  # let the poll start waiting

    client_for(owner).post("/cli-auth", {"secret": secret, "action": "authorize"})
    poller.join(timeout=20)

    assert not poller.is_alive(), "the poll was not woken by the approval"
    assert answers[0]["data"]["cloudTokenRequest"]["token"]
