"""The management client against the runtime as a real process: every call, and its errors."""

import secrets
import socket
import threading

import pytest

from servers.management_api import ManagementClient, PrismaError, ServerUnreachable
from tests.runtime.conftest import management_token
from tests.servers.conftest import closed_port_origin

pytestmark = [pytest.mark.multiprocess]

DATAMODEL = "type Post { id: ID! @id title: String! }"


@pytest.fixture
def client(region, platform_keys) -> ManagementClient:
    token = management_token(platform_keys.private_pem, algorithm="RS256", expires_in=300)
    return ManagementClient(region.url, token=token, timeout=30)


def test_a_service_lives_and_dies_through_the_client(client):
    name = f"ws~svc{secrets.token_hex(3)}"

    assert client.server_info()["version"]
    client.add_project(name, "dev")
    payload = client.deploy(name, "dev", DATAMODEL)
    assert payload["errors"] == [] and payload["migration"]["revision"] == 2
    assert [step["type"] for step in payload["steps"]][:1] == ["CreateModel"]
    status = client.migration_status(name, "dev")
    assert status["revision"] in (1, 2)
    assert {"name": name, "stage": "dev"} in client.list_projects()
    migrations = client.list_migrations(name, "dev")
    assert migrations[0]["revision"] == 2
    client.delete_project(name, "dev")
    assert {"name": name, "stage": "dev"} not in client.list_projects()


def test_a_datamodel_error_comes_back_in_the_payload(client):
    name = f"ws~svc{secrets.token_hex(3)}"
    client.add_project(name, "dev")
    try:
        payload = client.deploy(name, "dev", "type Post { title: Strin }")
        assert payload["migration"] is None
        assert payload["errors"] and payload["errors"][0]["type"] == "Post"
    finally:
        client.delete_project(name, "dev")


def test_prisma_errors_keep_their_code(client, region):
    with pytest.raises(PrismaError) as unknown:
        client.migration_status("ws~nothing", "dev")
    assert unknown.value.code == 4000
    with pytest.raises(PrismaError) as anonymous:
        ManagementClient(region.url).list_projects()
    assert anonymous.value.code == 3015


def test_a_token_signed_with_another_key_is_refused(region):
    stranger = management_token(
        "not the platform key, but long enough for HS256"
    )  # HS256: the region knows none
    with pytest.raises(PrismaError) as refused:
        ManagementClient(region.url, token=stranger).list_projects()
    assert refused.value.code == 3015


def test_a_closed_port_is_unreachable_not_a_prisma_error():
    with pytest.raises(ServerUnreachable, match="cannot connect"):
        ManagementClient(closed_port_origin(), timeout=5).server_info()


def test_a_hung_server_times_out(silent_server):
    with pytest.raises(ServerUnreachable, match=r"did not answer within|timed out"):
        ManagementClient(silent_server, timeout=0.5).server_info()


@pytest.fixture
def html_server():
    """Answers every request with an HTML error page (a proxy in front of a dead server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                body = b"<html>502 Bad Gateway</html>"
                conn.sendall(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_an_answer_that_is_not_the_management_api_is_unreachable(html_server):
    with pytest.raises(ServerUnreachable, match="HTTP 502"):
        ManagementClient(html_server, timeout=5).server_info()
