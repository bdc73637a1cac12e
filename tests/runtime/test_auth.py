"""Management API authentication: HS256 with the secret, RS256 with the public key, open mode."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
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
    Response,
    Runtime,
    make_key_pair,
    management_token,
    run_runtime,
)

pytestmark = [pytest.mark.multiprocess]

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


# Before the body: a stranger's request costs the server nothing it can avoid -----------------


def raw_request(runtime: Runtime, head: str, body: bytes = b"", timeout: float = 30) -> bytes:
    """Send a request's head and the given part of its body, then read the answer without
    sending the rest: a server that waited for the whole body would never answer."""
    host, port = runtime.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def answer_json(raw: bytes) -> tuple[int, dict[str, str], dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def management_head(size: int, authorization: str | None = None) -> str:
    lines = [
        "POST /management HTTP/1.1",
        "Host: localhost",
        "Content-Type: application/json",
        f"Content-Length: {size}",
    ]
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return "\r\n".join(lines) + "\r\n"


FIFTEEN_MB = 15 * 1024 * 1024


def test_a_bad_token_is_refused_before_the_body_is_read(runtime: Runtime) -> None:
    wrong = management_token(secret="not-the-secret-0123456789-abcdefgh")
    for token in (wrong, management_token(expires_in=-60), "this.is-not.a-jwt"):
        # 15 MB announced, none sent: the answer comes from the header alone.
        status, _, body = answer_json(
            raw_request(runtime, management_head(FIFTEEN_MB, f"Bearer {token}"))
        )
        assert status == 200
        (error,) = body["errors"]
        assert error["code"] == 3015
        assert error["message"].startswith("Authentication token is invalid: Token can't be")
        assert "data" not in body


def test_without_a_token_a_secured_server_reads_only_a_small_body(runtime: Runtime) -> None:
    status, _, body = answer_json(
        raw_request(runtime, management_head(FIFTEEN_MB), b"[" + b" " * (4 * 1024 + 1))
    )
    assert status == 200
    (error,) = body["errors"]
    assert error["code"] == 3015
    assert error["message"] == (
        "Authentication token is invalid: 'Authorization' header not provided (without a "
        "token, this server reads at most 4 KB of a request)"
    )
    # The CLI's probes are small and still answered without a token.
    assert runtime.management("{ serverInfo { version } }")["data"]["serverInfo"]["version"]
    assert runtime.management("{ listProjects { name } }")["errors"][0]["code"] == 3015


def test_with_a_valid_token_a_large_body_is_read_and_answered(
    runtime: Runtime, token: str, service_name: str
) -> None:
    padding = " " * (2 * 1024 * 1024)
    answer = runtime.post(
        "/management",
        None,
        token=token,
        raw=f'{{"query": "{{ serverInfo {{ version }} }}", "pad": "{padding}"}}'.encode(),
    )
    assert answer.status == 200 and answer.body["data"]["serverInfo"]["version"]


def post_with(runtime: Runtime, path: str, headers: dict[str, str], data: bytes) -> Response:
    request = urllib.request.Request(runtime.url + path, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            status, answer_headers, body = answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, body = error.code, dict(error.headers), error.read()
    return Response(status, {k.lower(): v for k, v in answer_headers.items()}, json.loads(body))


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_the_management_api_refuses_what_a_web_page_can_send_without_asking(
    runtime: Runtime, open_runtime: Runtime, token: str, content_type: str | None
) -> None:
    """A page on any site can POST a form or text to localhost:4466 without a CORS preflight;
    it cannot send `application/json`, so the management API accepts nothing else."""
    headers = {"Origin": "https://evil.example"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    query = b'{"query": "{ listProjects { name stage } }"}'
    for target, auth in ((open_runtime, {}), (runtime, {"Authorization": f"Bearer {token}"})):
        answer = post_with(target, "/management", {**headers, **auth}, query)
        assert answer.status == 415
        (error,) = answer.body["errors"]
        assert error["message"] == (
            "The management API accepts only JSON: send the request with `Content-Type: "
            "application/json`."
        )
        assert "access-control-allow-origin" not in answer.headers


def test_json_with_a_charset_is_json(open_runtime: Runtime) -> None:
    answer = post_with(
        open_runtime,
        "/management",
        {"Content-Type": "application/json; charset=utf-8"},
        b'{"query": "{ listProjects { name } }"}',
    )
    assert answer.status == 200 and answer.body["data"]["listProjects"] is not None


def test_the_management_api_answers_no_cross_origin_request(open_runtime: Runtime) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = urllib.request.Request(  # noqa: S310 - loopback
        open_runtime.url + "/management",
        method="OPTIONS",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    with urllib.request.urlopen(preflight, timeout=30) as answer:  # noqa: S310 - loopback
        assert answer.headers.get("access-control-allow-origin") is None
        assert answer.headers.get("access-control-allow-headers") is None
    listing = post_with(
        open_runtime,
        "/management",
        {**origin, "Content-Type": "application/json"},
        b'{"query": "{ listProjects { name } }"}',
    )
    assert "access-control-allow-origin" not in listing.headers
    # Service endpoints stay open to browser apps, as Prisma's are.
    service = post_with(
        open_runtime, "/nothing/dev", {**origin, "Content-Type": "application/json"}, b"{}"
    )
    assert service.headers["access-control-allow-origin"] == "*"


def test_one_request_runs_at_most_10_operations_of_10_root_fields(
    runtime: Runtime, token: str
) -> None:
    info = {"query": "{ serverInfo { version } }"}
    ten = runtime.post("/management", [info] * 10, token=token)
    assert len(ten.body) == 10 and all(a["data"]["serverInfo"] for a in ten.body)
    for who in (token, None):
        eleven = runtime.post("/management", [info] * 11, token=who)
        (error,) = eleven.body["errors"]
        assert error["code"] == 1001
        assert error["message"] == (
            "This request holds 11 operations; the management API runs at most 10 per request."
        )
    aliases = " ".join(f"a{i}: serverInfo {{ version }}" for i in range(11))
    for query in (f"{{ {aliases} }}", f"{{ ...F ...F }} fragment F on Query {{ {aliases} }}"):
        (error,) = runtime.management(query, token=token)["errors"]
        assert error["code"] == 1001
        assert error["message"] == (
            "This operation selects 11 root fields; the management API runs at most 10 per "
            "operation."
        )
