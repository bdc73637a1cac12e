"""Management API authentication: HS256 with the secret, RS256 with the public key, open mode."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from runtime.auth import verify_management
from runtime.config import AuthConfig
from runtime.errors import PrismaError
from tests.runtime.conftest import (
    Database,
    KeyPair,
    Runtime,
    make_key_pair,
    management_token,
    run_runtime,
)

PROJECT = "query($n: String!, $s: String!) { project(name: $n, stage: $s) { name } }"
ADD = 'mutation($n: String!) { addProject(input: {name: $n, stage: "dev"}) { project { name } } }'


def auth_error(runtime: Runtime, token: str | None, name: str = "svc", stage: str = "dev") -> dict:
    answer = runtime.management(PROJECT, {"n": name, "s": stage}, token)
    (error,) = answer["errors"]
    return error


def test_no_token_is_refused(runtime: Runtime) -> None:
    error = auth_error(runtime, None)
    assert error["code"] == 3015
    assert (
        error["message"] == "Authentication token is invalid: 'Authorization' header not provided"
    )


def test_a_token_signed_with_the_wrong_secret_is_refused(runtime: Runtime) -> None:
    error = auth_error(runtime, management_token(secret="not-the-secret-0123456789-abcdefgh"))
    assert error["code"] == 3015
    assert error["message"].startswith("Authentication token is invalid: Token can't be decoded:")


def test_an_expired_token_is_refused(runtime: Runtime) -> None:
    error = auth_error(runtime, management_token(expires_in=-60))
    assert error["code"] == 3015
    assert "Token can't be decoded: The token is expired since" in error["message"]


def test_grants_that_do_not_cover_the_service_are_refused(runtime: Runtime) -> None:
    token = management_token(grants=[{"target": "other/dev", "action": "*"}])
    error = auth_error(runtime, token, "svc", "dev")
    assert error == {
        **error,
        "code": 3015,
        "message": "Authentication token is invalid: Token contained 1 grants but none satisfied "
        "the request.",
    }
    listing = runtime.management("{ listProjects { name } }", token=token)
    assert listing["errors"][0]["code"] == 3015


def test_a_malformed_token_is_refused(runtime: Runtime) -> None:
    error = auth_error(runtime, "this.is-not.a-jwt")
    assert error["code"] == 3015
    assert "Token can't be decoded" in error["message"]
    unparsable = jwt.encode(
        {"exp": int(time.time()) + 60}, "refract-test-management-secret-0123456789"
    )
    error = auth_error(runtime, unparsable)
    assert error["message"] == "Authentication token is invalid: Failed to parse token data"


@pytest.mark.parametrize("target", ["{service}/dev", "{service}/*", "*/dev", "*/*"])
def test_grants_match_service_and_stage_exactly_or_by_star(
    runtime: Runtime, service_name: str, target: str
) -> None:
    token = management_token(
        grants=[{"target": target.format(service=service_name), "action": "*"}]
    )
    # Past authentication, the unknown service is reported: the grant matched.
    assert auth_error(runtime, token, service_name, "dev")["code"] == 4000


def test_an_rs256_token_signed_with_the_configured_key_is_accepted(
    runtime: Runtime, key_pair: KeyPair, service_name: str
) -> None:
    grants = [{"target": f"{service_name}/dev", "action": "*"}]
    token = management_token(key_pair.private_pem, grants=grants, algorithm="RS256")
    answer = runtime.management(ADD, {"n": service_name}, token)
    assert answer == {"data": {"addProject": {"project": {"name": service_name}}}}


def test_an_rs256_token_signed_with_another_key_is_refused(runtime: Runtime) -> None:
    other = make_key_pair()
    token = management_token(other.private_pem, algorithm="RS256")
    error = auth_error(runtime, token)
    assert error["code"] == 3015
    assert error["message"] == (
        "Authentication token is invalid: Token can't be decoded: Invalid signature for this token"
    )


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("abba", "Contained invalid grant 'Vector(abba)'"),
        ("*/*/*", "Contained invalid grant 'Vector(*, *, *)'"),
        ("", "Contained invalid grant 'Vector()'"),
        ("/", "Contained invalid grant 'Vector()'"),
        ("/*", "Both service and stage must be defined in grant 'TokenGrant(/*,*)'"),
    ],
)
def test_invalid_grant_targets_are_explained_like_prisma(target: str, message: str) -> None:
    secret = "unit-test-secret-0123456789-0123456789"
    token = management_token(secret, grants=[{"target": target, "action": "*"}])
    with pytest.raises(PrismaError) as raised:
        verify_management(AuthConfig(management_secret=secret), f"Bearer {token}", "svc", "dev")
    assert raised.value.code == 3015
    assert raised.value.message == f"Authentication token is invalid: {message}"


@pytest.fixture(scope="module")
def open_runtime(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    config = {"databases": {"default": database.prisma_config()}}
    with run_runtime(config, Path(tmp_path_factory.mktemp("open"))) as running:
        yield running


def test_without_secret_or_key_the_management_api_is_open(
    open_runtime: Runtime, service_name: str
) -> None:
    assert open_runtime.management("{ listProjects { name } }")["data"] is not None
    answer = open_runtime.management(ADD, {"n": service_name})
    assert answer == {"data": {"addProject": {"project": {"name": service_name}}}}
