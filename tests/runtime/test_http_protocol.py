"""The runtime's HTTP protocol (`runtime.http`) over raw sockets: small service POSTs take the
short road past ASGI, everything else goes through uvicorn, and a connection carrying both
(keep-alive, pipelined requests, `Connection: close`) answers each in order, in full."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

DATAMODEL = """
type Note {
  id: ID! @id
  text: String! @unique
}
"""


def request(path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> bytes:
    method = "POST" if body is not None else "GET"
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None and "Transfer-Encoding" not in (headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def graphql(query: str, **variables: str) -> bytes:
    return json.dumps({"query": query, "variables": variables or None}).encode()


def read_responses(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`count` responses (Content-Length or chunked bodies) read off the socket, in order."""
    buffer = b""
    answers = []
    sock.settimeout(30)
    while len(answers) < count:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} responses"
            buffer += chunk
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        status = int(status_line.split()[1])
        if status < 200:
            body = b""  # an interim response: no body
        elif "content-length" in headers:
            length = int(headers["content-length"])
            while len(buffer) < length:
                buffer += sock.recv(65536)
            body, buffer = buffer[:length], buffer[length:]
        else:
            assert headers.get("transfer-encoding") == "chunked", headers
            body = b""
            while True:
                while b"\r\n" not in buffer:
                    buffer += sock.recv(65536)
                size_line, buffer = buffer.split(b"\r\n", 1)
                size = int(size_line, 16)
                while len(buffer) < size + 2:
                    buffer += sock.recv(65536)
                body, buffer = body + buffer[:size], buffer[size + 2 :]
                if size == 0:
                    break
        answers.append((status, headers, body))
    return answers


@pytest.fixture
def service(runtime: Runtime, token: str, service_name: str) -> tuple[Runtime, str]:
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, DATAMODEL)
    return runtime, f"/{service_name}/dev"


def connect(runtime: Runtime) -> socket.socket:
    host, port = runtime.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def test_pipelined_requests_of_every_kind_are_answered_in_order(service: tuple[Runtime, str]):
    runtime, path = service
    create = "mutation($text: String!) { createNote(data: {text: $text}) { text } }"
    with connect(runtime) as sock:
        sock.sendall(
            request(path, graphql(create, text="one"))  # the short road
            + request("/status")  # uvicorn's
            + request(path, graphql("{ notes(orderBy: text_ASC) { text } }"))
            + request("/management", graphql("{ serverInfo { version } }"))  # declined: ASGI
            + request(path, graphql(create, text="two"))
        )
        answers = read_responses(sock, 5)
    bodies = [body for _, _, body in answers]
    assert [status for status, _, _ in answers] == [200] * 5
    assert json.loads(bodies[0]) == {"data": {"createNote": {"text": "one"}}}
    assert bodies[1] == b"OK"
    assert json.loads(bodies[2]) == {"data": {"notes": [{"text": "one"}]}}
    assert "version" in json.loads(bodies[3])["data"]["serverInfo"]
    assert json.loads(bodies[4]) == {"data": {"createNote": {"text": "two"}}}
    # A service answer keeps what the ASGI path sent: request id, CORS, date, JSON.
    headers = answers[0][1]
    assert headers["content-type"] == "application/json"
    assert headers["request-id"].startswith("local:") and len(headers["request-id"]) == 31
    assert headers["access-control-allow-origin"] == "*"
    assert "date" in headers
    assert "access-control-allow-origin" not in answers[3][1]  # the management API: no CORS


def test_bodies_the_short_road_leaves_to_uvicorn_are_answered_alike(
    service: tuple[Runtime, str],
):
    runtime, path = service
    query = graphql("{ notes { text } }")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(query), query)
    with connect(runtime) as sock:
        sock.sendall(request(path, chunked, {"Transfer-Encoding": "chunked"}))
        sock.sendall(request(path, query, {"Expect": "100-continue"}))
        sock.sendall(request(path, b'{"query": "{ notes { id } }", "x": "' + b"y" * 70_000 + b'"}'))
        sock.sendall(request(path, b"{nope"))
        answers = read_responses(sock, 5)
    # Expect: 100-continue is uvicorn's to answer, when that request's turn comes.
    assert [status for status, _, _ in answers] == [200, 100, 200, 200, 400]
    rest = [answers[0], *answers[2:]]
    assert json.loads(rest[0][2]) == json.loads(rest[1][2]) == {"data": {"notes": []}}
    assert json.loads(rest[2][2]) == {"data": {"notes": []}}
    assert json.loads(rest[3][2])["errors"][0]["message"] == "The request body is not valid JSON."


def test_connection_close_is_honoured_on_the_short_road(service: tuple[Runtime, str]):
    runtime, path = service
    with connect(runtime) as sock:
        sock.sendall(request(path, graphql("{ notes { text } }"), {"Connection": "close"}))
        ((status, headers, body),) = read_responses(sock, 1)
        assert sock.recv(1) == b""  # the runtime closed it after the answer
    assert status == 200 and headers["connection"] == "close"
    assert json.loads(body) == {"data": {"notes": []}}


KEEP_ALIVE_SECONDS = 5  # uvicorn's default, which the runtime keeps


def test_a_connection_in_use_stays_open_and_an_idle_one_is_closed(service: tuple[Runtime, str]):
    """The keep-alive timeout (`runtime.http`): requests spread over more than the timeout keep
    a connection open, on the short road and uvicorn's alike; once idle that long, it closes."""
    runtime, path = service
    with connect(runtime) as sock:
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < KEEP_ALIVE_SECONDS + 1.5:
            short = sent % 2 == 0
            sock.sendall(
                request(path, graphql("{ notes { text } }")) if short else request("/status")
            )
            ((status, _, _),) = read_responses(sock, 1)
            idle = time.monotonic()  # the runtime's idle stretch began just before
            assert status == 200
            sent += 1
            time.sleep(0.5)
        sock.settimeout(KEEP_ALIVE_SECONDS * 4)
        assert sock.recv(1) == b""  # closed by the runtime, not by the timeout of this read
        assert time.monotonic() - idle >= KEEP_ALIVE_SECONDS - 0.05
    assert sent >= 12


def test_a_client_gone_before_its_answer_leaves_the_connection_pool_fit(
    service: tuple[Runtime, str],
):
    runtime, path = service
    for _ in range(20):  # more clients than the loop has connections
        with connect(runtime) as sock:
            sock.sendall(request(path, graphql("{ notes { text } }")))
    answer = runtime.post(path, {"query": "{ notes { text } }"})
    assert answer.status == 200 and answer.body == {"data": {"notes": []}}
