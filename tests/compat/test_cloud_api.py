"""The Prisma CLI's cloud API: GraphQL in, JSON out, exactly the documents the CLI sends."""

import threading
import time

import jwt
import pytest
from django.db import connection
from django.test import Client

from accounts import cli_login, session_keys, throttle
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


# What the Prisma CLI sends (protocol reference section 2), newlines and all: none may break.
CLI_DOCUMENTS = {
    "me": (
        "\n  {\n    me {\n      id\n      name\n      login {\n        email\n      }\n    }\n  }\n"
    ),
    "requestCloudToken": "\n  mutation {\n    requestCloudToken {\n      secret\n    }\n  }\n",
    "renewToken": "\n      mutation {\n        renewToken\n      }\n    ",
    "prismaCliGetClusters": (
        "\n      query prismaCliGetClusters {\n        me {\n          memberships {\n"
        "            workspace {\n              id\n              slug\n              clusters {\n"
        "                id\n                name\n                connectInfo {\n"
        "                  endpoint\n                }\n                customConnectionInfo {\n"
        "                  endpoint\n                }\n              }\n            }\n"
        "          }\n        }\n      }\n    "
    ),
    "services": (
        "{ me { memberships { workspace { services { id stage name cluster { name } } } } } }"
    ),
    "workspaces": (
        "{ me { memberships { workspace { id name slug clusters { id name connectInfo"
        " { endpoint } } } } } }"
    ),
}


@pytest.mark.parametrize("name", CLI_DOCUMENTS)
def test_every_document_the_prisma_cli_sends_is_answered(owner, name):
    answer = gql(CLI_DOCUMENTS[name], token=key_for(owner))

    assert answer["status"] == 200
    assert "errors" not in answer, answer
    assert answer["data"]


def test_the_poll_document_the_prisma_cli_sends_is_answered(db):
    secret = gql(REQUEST)["data"]["requestCloudToken"]["secret"]
    sent = (
        "\n      query ($secret: String!) {\n        cloudTokenRequest(secret: $secret) {\n"
        "          secret\n          token\n        }\n      }\n    "
    )

    answer = gql(sent, {"secret": secret})

    assert answer["data"] == {"cloudTokenRequest": {"secret": secret, "token": None}}


def test_aliased_login_starts_are_refused_whole(db):
    aliased = "mutation {" + " ".join(f"a{i}: requestCloudToken {{ secret }}" for i in range(50))
    answer = gql(aliased + " }")

    assert answer["status"] == 400
    assert "exactly one root field" in answer["errors"][0]["message"]
    assert not CliLoginRequest.objects.exists()


def test_aliased_polls_are_refused_before_any_is_held(db, settings):
    settings.CLI_LOGIN_HOLD_SECONDS = 60  # one held poll would keep this test waiting a minute
    secret = gql(REQUEST)["data"]["requestCloudToken"]["secret"]
    polls = " ".join(f"p{i}: cloudTokenRequest(secret: $s) {{ token }}" for i in range(4))

    answer = gql(f"query ($s: String!) {{ {polls} }}", {"s": secret})

    assert answer["status"] == 400
    assert CliLoginRequest.objects.get().last_polled_at is None


@pytest.mark.parametrize(
    "document",
    [
        "{ ...Twice } fragment Twice on Query { a: me { id } b: me { id } }",
        "{ ... on Query { me { id } } }",
        "{ me { id } __typename }",
        "query A { me { id } } query B { me { id } }",
    ],
)
def test_fragments_extra_root_fields_and_several_operations_are_refused(db, document):
    answer = gql(document)

    assert answer["status"] == 400
    assert answer["data"] is None
    assert answer["errors"][0]["requestId"]


def test_batched_requests_are_refused(db):
    batch = [{"query": REQUEST}] * 5
    response = Client().post("/cloud-api", batch, content_type="application/json")

    assert response.status_code == 400
    assert "Batched requests are not supported" in response.json()["errors"][0]["message"]
    assert not CliLoginRequest.objects.exists()


def test_a_document_selecting_too_many_fields_is_refused(owner):
    fields = " ".join(f"f{i}: id" for i in range(150))

    answer = gql(f"{{ me {{ {fields} }} }}", token=key_for(owner))

    assert answer["status"] == 400
    assert "more than 100 fields" in answer["errors"][0]["message"]


def test_login_starts_share_one_limit_with_the_rest_api(db, settings):
    settings.CLI_LOGIN_START_RATE = "4/min"
    address = {"REMOTE_ADDR": "198.51.100.20"}
    rest = [
        Client(**address).post("/api/v1/cli-login", {}, content_type="application/json")
        for _ in range(2)
    ]
    graphql = [gql(REQUEST, **address) for _ in range(3)]

    assert [r.status_code for r in rest] == [201, 201]
    assert [bool(a["data"]) for a in graphql] == [True, True, False]
    refused = graphql[-1]["errors"][0]
    assert refused["code"] == "too_many_requests"
    assert "Too many login requests" in refused["message"]
    assert CliLoginRequest.objects.count() == 4
    again = Client(**address).post("/api/v1/cli-login", {}, content_type="application/json")
    assert again.status_code == 429
    assert again.json()["code"] == "too_many_requests"
    assert int(again["Retry-After"]) > 0
    assert gql(REQUEST, REMOTE_ADDR="198.51.100.21")["data"]  # another address is its own


def test_an_unexpected_error_is_logged_with_the_request_id(db, settings, caplog):
    # A hostile state of a real component: the start counter's Redis key holds a string, so
    # the resolver's sorted-set command fails as an unforeseen error would.
    address = "198.51.100.30"
    throttle.client().set(f"{settings.REDIS_KEY_PREFIX}:counter:cli-login-start:{address}", "x")
    response = Client(REMOTE_ADDR=address).post(
        "/cloud-api", {"query": REQUEST}, content_type="application/json"
    )

    error = response.json()["errors"][0]
    request_id = response["Request-Id"]
    assert response.status_code == 200
    assert error["requestId"] == request_id
    assert error["message"] == (
        "Whoops. Looks like an internal server error. Search your server logs for request ID: "
        f"{request_id}"
    )
    assert "WRONGTYPE" not in str(response.json())  # no internals leak to the client
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info and "WRONGTYPE" in str(logged[0].exc_info[1])


def test_an_error_outside_the_resolvers_is_a_logged_500_in_the_prisma_format(db, settings, caplog):
    address = "198.51.100.31"
    throttle.client().set(f"{settings.REDIS_KEY_PREFIX}:counter:cloud-api:{address}", "x")
    response = Client(REMOTE_ADDR=address).post(
        "/cloud-api", {"query": ME}, content_type="application/json", HTTP_X_REQUEST_ID="lb-42"
    )

    assert response.status_code == 500
    assert response["Request-Id"] == "lb-42"
    assert response.json()["errors"][0]["requestId"] == "lb-42"
    assert any("lb-42" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_hold_stays_under_the_socket_timeout_of_the_client_that_waits():
    assert cli_login.effective_hold(5, 5.0) == 4.0
    assert cli_login.effective_hold(2, 10.0) == 2
    assert cli_login.effective_hold(5, 0.5) == 0
    assert cli_login.effective_hold(3, None) == 3
    socket_timeout = throttle.blocking_client().connection_pool.connection_kwargs["socket_timeout"]
    assert socket_timeout is not None  # never a blocking call that can hang forever
    assert cli_login.hold_seconds() <= socket_timeout - cli_login.HOLD_MARGIN_SECONDS


@pytest.mark.django_db(transaction=True)
def test_a_poll_held_longer_than_redis_default_socket_timeout_answers_pending(db, settings):
    """redis-py's default socket timeout is 5 s; a 6 s hold used to end in
    `Timeout reading from socket` instead of `token: null`."""
    settings.CLI_LOGIN_HOLD_SECONDS = 6
    secret = gql(REQUEST)["data"]["requestCloudToken"]["secret"]

    answer = gql(POLL, {"secret": secret})

    assert "errors" not in answer, answer
    assert answer["data"] == {"cloudTokenRequest": {"secret": secret, "token": None}}


def _poll_in_background(secret: str, answers: list) -> threading.Thread:
    def held_poll() -> None:
        try:
            answers.append(gql(POLL, {"secret": secret}))
        finally:
            connection.close()

    thread = threading.Thread(target=held_poll)
    thread.start()
    return thread


def _wait_until_held(login_id: object, prefix: str) -> None:
    key = f"{prefix}:cli-login-held:{login_id}"
    for _ in range(400):
        if throttle.client().exists(key):
            return
        time.sleep(0.05)
    raise AssertionError("the poll was never held")


@pytest.mark.django_db(transaction=True)
def test_one_held_poll_per_request_and_a_few_per_address(owner, settings):
    """Holding costs a web thread: a second poll of the same request, or a poll beyond the
    address's share, is answered at once instead of waiting."""
    settings.CLI_LOGIN_HOLD_SECONDS = 9
    settings.CLI_LOGIN_MAX_HOLDS_PER_ADDRESS = 1
    first = gql(REQUEST)["data"]["requestCloudToken"]["secret"]
    second = gql(REQUEST)["data"]["requestCloudToken"]["secret"]
    held_answers: list = []
    held = _poll_in_background(first, held_answers)
    _wait_until_held(cli_login.find_by_secret(first).pk, settings.REDIS_KEY_PREFIX)

    same_request = gql(POLL, {"secret": first})  # would wait 9 s if it were held too
    same_address = gql(POLL, {"secret": second})
    client_for(owner).post("/cli-auth", {"secret": first, "action": "authorize"})
    held.join(timeout=20)

    assert same_request["data"]["cloudTokenRequest"]["token"] is None
    assert same_address["data"]["cloudTokenRequest"]["token"] is None
    assert not held.is_alive()
    assert held_answers[0]["data"]["cloudTokenRequest"]["token"]
