"""Workspace-scoped management tokens on a shared sandbox runtime (Refract's extension).

One sandbox runtime holds two workspaces whose slugs share a prefix, `acme` and `acmecorp`, and
a plain service. The console signs RS256 tokens for a workspace with the platform's key pair,
granting `<workspace>~*/<stage or *>`: such a token manages and lists that workspace's services
(`<workspace>~<service>`) and nothing else.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import sql

from runtime.auth import verify_management
from runtime.config import AuthConfig
from runtime.errors import PrismaError
from tests.runtime.conftest import (
    MANAGEMENT_SECRET,
    Database,
    KeyPair,
    Runtime,
    management_token,
    run_runtime,
)
from tests.runtime.management.test_management_api import ADD, DEPLOY, STATUS, TODO

pytestmark = [pytest.mark.multiprocess]

POST = "type Post { id: ID! @id  title: String! }"
LIST = "{ listProjects { name stage datamodel } }"
PROJECT = "query($n: String!, $s: String!) { project(name: $n, stage: $s) { name datamodel } }"
MIGRATIONS = "query($n: String!, $s: String!) { listMigrations(name: $n, stage: $s) { revision } }"
PROJECT_TOKEN = "query($n: String!, $s: String!) { generateProjectToken(name: $n, stage: $s) }"
DELETE = "mutation($i: DeleteProjectInput!) { deleteProject(input: $i) { project { name } } }"
CLOUD_SECRET = 'mutation { setCloudSecret(input: {secret: "x"}) { clientMutationId } }'
NONE_SATISFIED = (
    "Authentication token is invalid: Token contained 1 grants but none satisfied the request."
)
# What the runtime holds before each test: (name, stage, datamodel).
BASELINE = {
    ("acme~blog", "dev", POST),
    ("acme~blog", "prod", POST),
    ("acme~shop", "dev", TODO),
    ("acmecorp~blog", "dev", TODO),
    ("acmecorp~crm", "dev", POST),
    ("svc", "dev", TODO),
    ("acme", "dev", TODO),  # a plain service named like the workspace is not the workspace's
}


def workspace_token(key_pair: KeyPair, *targets: str) -> str:
    """What the console signs for a workspace: RS256 with the platform's private key."""
    grants = [{"target": target, "action": "*"} for target in targets]
    return management_token(key_pair.private_pem, grants=grants, algorithm="RS256")


@pytest.fixture(scope="module")
def sandbox(
    database: Database, key_pair: KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A shared sandbox runtime on a database of its own, so listings can be compared whole."""
    own = dataclasses.replace(database, database=f"{database.database}_workspaces")
    config = {
        "managementApiSecret": MANAGEMENT_SECRET,
        "managementPublicKey": key_pair.public_pem,
        "databases": {"default": own.prisma_config()},
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": 100, "perSeconds": 1, "maxWaiting": 25},
    }
    try:
        with run_runtime(config, tmp_path_factory.mktemp("workspaces")) as running:
            yield running
    finally:
        with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(own.database)
                )
            )


def call(runtime: Runtime, query: str, variables: dict[str, Any], token: str | None) -> dict:
    return runtime.management(query, variables, token)


def listing(runtime: Runtime, token: str | None) -> set[tuple[str, str, str]]:
    answer = runtime.management(LIST, token=token)
    assert "errors" not in answer, answer
    return {(p["name"], p["stage"], p["datamodel"]) for p in answer["data"]["listProjects"]}


@pytest.fixture(autouse=True)
def baseline(sandbox: Runtime) -> Iterator[None]:
    """Every test starts from BASELINE (made with the platform's `*/*` secret token) and puts
    it back: whatever a refused call might have changed shows up in the test that made it."""
    admin = management_token()
    held = listing(sandbox, admin)
    for name, stage, datamodel in BASELINE - held:
        if (name, stage) not in {(n, s) for n, s, _ in held}:
            assert "errors" not in call(sandbox, ADD, {"name": name, "stage": stage}, admin)
        answer = call(sandbox, DEPLOY, {"name": name, "stage": stage, "types": datamodel}, admin)
        assert "errors" not in answer and not answer["data"]["deploy"]["errors"], answer
    assert listing(sandbox, admin) == BASELINE
    yield
    for name, stage, _ in listing(sandbox, admin) - BASELINE:
        call(sandbox, DELETE, {"i": {"name": name, "stage": stage}}, admin)


def test_a_workspace_token_manages_its_own_services(sandbox: Runtime, key_pair: KeyPair) -> None:
    acme = workspace_token(key_pair, "acme~*/*")
    created = call(sandbox, ADD, {"name": "acme~notes", "stage": "dev"}, acme)
    assert created == {"data": {"addProject": {"project": {"name": "acme~notes", "stage": "dev"}}}}
    deployed = call(sandbox, DEPLOY, {"name": "acme~notes", "stage": "dev", "types": POST}, acme)
    assert deployed["data"]["deploy"]["migration"]["status"] in {"PENDING", "SUCCESS"}
    assert deployed["data"]["deploy"]["errors"] == []
    names = {"n": "acme~notes", "s": "dev"}
    assert call(sandbox, PROJECT, names, acme)["data"]["project"] == {
        "name": "acme~notes",
        "datamodel": POST,
    }
    status = call(sandbox, STATUS, {"name": "acme~notes", "stage": "dev"}, acme)
    assert status["data"]["migrationStatus"]["projectId"] == "acme~notes$dev"
    revisions = call(sandbox, MIGRATIONS, names, acme)["data"]["listMigrations"]
    assert [m["revision"] for m in revisions] == [2, 1]
    assert call(sandbox, PROJECT_TOKEN, names, acme) == {"data": {"generateProjectToken": ""}}
    # The service answers at the workspace's route.
    served = sandbox.post("/acme/notes/dev", {"query": "{ posts { id } }"})
    assert served.body == {"data": {"posts": []}}
    # Every stage and service of the workspace, including ones it did not create.
    for name, stage in (("acme~blog", "prod"), ("acme~shop", "dev")):
        found = call(sandbox, PROJECT, {"n": name, "s": stage}, acme)
        assert found["data"]["project"]["name"] == name
    deleted = call(sandbox, DELETE, {"i": {"name": "acme~notes", "stage": "dev"}}, acme)
    assert deleted == {"data": {"deleteProject": {"project": {"name": "acme~notes"}}}}
    assert ("acme~notes", "dev") not in {(n, s) for n, s, _ in listing(sandbox, acme)}


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        ("acmecorp~blog", "dev"),  # another workspace whose slug starts with `acme`
        ("acmecorp~crm", "dev"),
        ("svc", "dev"),  # a plain service
        ("acme", "dev"),  # a plain service named like the workspace
    ],
)
def test_a_workspace_token_gets_3015_for_every_other_service(
    sandbox: Runtime, key_pair: KeyPair, name: str, stage: str
) -> None:
    acme = workspace_token(key_pair, "acme~*/*")
    names = {"n": name, "s": stage}
    answers = [
        call(sandbox, PROJECT, names, acme),
        call(sandbox, STATUS, {"name": name, "stage": stage}, acme),
        call(sandbox, MIGRATIONS, names, acme),
        call(sandbox, PROJECT_TOKEN, names, acme),
        call(sandbox, DEPLOY, {"name": name, "stage": stage, "types": POST, "force": True}, acme),
        call(sandbox, DELETE, {"i": {"name": name, "stage": stage}}, acme),
        call(sandbox, ADD, {"name": name, "stage": "other"}, acme),
        call(sandbox, ADD, {"name": f"{name}x", "stage": stage}, acme),
    ]
    for answer in answers:
        (error,) = answer["errors"]
        assert (error["code"], error["message"]) == (3015, NONE_SATISFIED), answer
    # Nothing changed: the autouse fixture finds BASELINE, and the datamodel is the old one.
    admin = management_token()
    assert (name, stage, POST if name == "acmecorp~crm" else TODO) in listing(sandbox, admin)
    assert listing(sandbox, admin) == BASELINE


def test_list_projects_shows_only_what_the_grants_allow(
    sandbox: Runtime, key_pair: KeyPair
) -> None:
    everything = listing(sandbox, workspace_token(key_pair, "*/*"))
    assert everything == BASELINE
    acme = listing(sandbox, workspace_token(key_pair, "acme~*/*"))
    assert acme == {p for p in BASELINE if p[0].startswith("acme~")}
    assert {name for name, _, _ in acme} == {"acme~blog", "acme~shop"}
    acmecorp = listing(sandbox, workspace_token(key_pair, "acmecorp~*/*"))
    assert {name for name, _, _ in acmecorp} == {"acmecorp~blog", "acmecorp~crm"}
    # A stage-scoped workspace grant, and one workspace's token naming a service beside it.
    assert {(n, s) for n, s, _ in listing(sandbox, workspace_token(key_pair, "acme~*/prod"))} == {
        ("acme~blog", "prod")
    }
    both = listing(sandbox, workspace_token(key_pair, "acme~*/dev", "acmecorp~crm/dev"))
    assert {(n, s) for n, s, _ in both} == {
        ("acme~blog", "dev"),
        ("acme~shop", "dev"),
        ("acmecorp~crm", "dev"),
    }
    # A workspace with no services yet has an empty list.
    assert listing(sandbox, workspace_token(key_pair, "globex~*/*")) == set()


def test_listing_stays_as_prisma_without_a_workspace_grant(
    sandbox: Runtime, key_pair: KeyPair
) -> None:
    # The CLI's unauthenticated probe still learns that the server needs a token.
    probe = sandbox.management("{ listProjects { name } }")
    assert probe["data"] is None
    assert probe["errors"][0]["code"] == 3015
    assert probe["errors"][0]["message"] == (
        "Authentication token is invalid: 'Authorization' header not provided"
    )
    assert sandbox.management("{ serverInfo { version } }")["data"]["serverInfo"]["version"]
    # Exact grants list nothing: only `*/*` may, as in Prisma.
    exact = sandbox.management(LIST, token=workspace_token(key_pair, "acme~blog/dev"))
    assert exact["data"] is None
    assert (exact["errors"][0]["code"], exact["errors"][0]["message"]) == (3015, NONE_SATISFIED)
    # `setCloudSecret` is server-wide: a workspace grant does not reach it.
    refused = sandbox.management(CLOUD_SECRET, token=workspace_token(key_pair, "acme~*/*"))
    assert (refused["errors"][0]["code"], refused["errors"][0]["message"]) == (
        3015,
        NONE_SATISFIED,
    )


def test_the_hs256_secret_path_takes_workspace_grants_too(sandbox: Runtime) -> None:
    acme = management_token(grants=[{"target": "acme~*/dev", "action": "*"}])
    assert jwt.get_unverified_header(acme)["alg"] == "HS256"
    assert {n for n, _, _ in listing(sandbox, acme)} == {"acme~blog", "acme~shop"}
    found = call(sandbox, PROJECT, {"n": "acme~shop", "s": "dev"}, acme)
    assert found["data"]["project"]["name"] == "acme~shop"
    for name, stage in (("acme~blog", "prod"), ("acmecorp~blog", "dev")):
        (error,) = call(sandbox, PROJECT, {"n": name, "s": stage}, acme)["errors"]
        assert (error["code"], error["message"]) == (3015, NONE_SATISFIED)
    # A token signed with another secret is refused before any grant is looked at.
    forged = management_token(
        "not-the-secret-0123456789-abcdefgh", grants=[{"target": "acme~*/*", "action": "*"}]
    )
    (error,) = sandbox.management(LIST, token=forged)["errors"]
    assert error["message"].startswith("Authentication token is invalid: Token can't be decoded")


MALFORMED = [
    ("Acme~*/*", "Vector(Acme~*, *)"),
    ("~*/*", "Vector(~*, *)"),
    ("*~*/*", "Vector(*~*, *)"),
    ("ac_me~*/*", "Vector(ac_me~*, *)"),
    ("acme.corp~*/*", "Vector(acme.corp~*, *)"),
    ("acme corp~*/dev", "Vector(acme corp~*, dev)"),
    ("acme~x~*/*", "Vector(acme~x~*, *)"),
    ("acme%~*/*", "Vector(acme%~*, *)"),
    ("acme\n~*/*", "Vector(acme\n~*, *)"),
    # Prisma's own shapes keep Prisma's messages.
    ("acme~*", "Vector(acme~*)"),
    ("acme~*/*/*", "Vector(acme~*, *, *)"),
]


@pytest.mark.parametrize(("target", "vector"), MALFORMED)
def test_malformed_workspace_grants_are_refused(
    sandbox: Runtime, key_pair: KeyPair, target: str, vector: str
) -> None:
    message = f"Authentication token is invalid: Contained invalid grant '{vector}'"
    # Refused whatever is asked, even when a grant after it would allow the call.
    token = workspace_token(key_pair, target, "*/*")
    for answer in (
        sandbox.management(LIST, token=token),
        call(sandbox, PROJECT, {"n": "acme~blog", "s": "dev"}, token),
        call(sandbox, PROJECT, {"n": "acme~blog", "s": "prod"}, token),
        call(sandbox, ADD, {"name": "acme~new", "stage": "dev"}, token),
    ):
        (error,) = answer["errors"]
        assert (error["code"], error["message"]) == (3015, message), answer
    assert listing(sandbox, management_token()) == BASELINE


@pytest.mark.parametrize(
    ("target", "service", "stage", "allowed"),
    [
        ("acme~*/*", "acme~blog", "dev", True),
        ("acme~*/*", "acme~a~b", "dev", True),
        ("acme~*/dev", "acme~blog", "dev", True),
        ("acme~*/dev", "acme~blog", "prod", False),
        ("acme~*/*", "acmecorp~blog", "dev", False),
        ("acme~*/*", "acme", "dev", False),
        ("acme~*/*", "xacme~blog", "dev", False),
        ("acme~*/*", "", "", False),  # server-wide calls need `*/*`
        ("acme-1~*/*", "acme-1~blog", "dev", True),
        ("acme-1~*/*", "acme~blog", "dev", False),
        ("*/*", "", "", True),
    ],
)
def test_workspace_grants_match_the_workspace_prefix(
    target: str, service: str, stage: str, allowed: bool
) -> None:
    secret = "unit-test-secret-0123456789-0123456789"
    token = management_token(secret, grants=[{"target": target, "action": "*"}])
    auth = AuthConfig(management_secret=secret)
    if allowed:
        verify_management(auth, f"Bearer {token}", service, stage)
    else:
        with pytest.raises(PrismaError) as raised:
            verify_management(auth, f"Bearer {token}", service, stage)
        assert (raised.value.code, raised.value.message) == (3015, NONE_SATISFIED)


def test_a_grant_after_the_matching_one_is_not_read_as_prisma() -> None:
    secret = "unit-test-secret-0123456789-0123456789"
    grants = [{"target": "acme~*/*", "action": "*"}, {"target": "Bad~*/*", "action": "*"}]
    token = management_token(secret, grants=grants)
    verify_management(AuthConfig(management_secret=secret), token, "acme~blog", "dev")
