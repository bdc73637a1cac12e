"""Subscriptions on servers registered at run time (the operator API): each on its user's own
database, both with the same service and datamodel. A subscriber of one never hears the
other's writes, and a registered server's connections stay open while it has subscribers."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from typing import Any

import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.subscriptions_client import Subscriber
from tests.runtime.test_operator import (  # noqa: F401 - the module's fixtures
    USER,
    Platform,
    UserDatabase,
    call,
    config,
    eventually,
    first,
    operator,
    platform,
    private,
    second,
    user_database,
)

pytestmark = [pytest.mark.multiprocess]

CREATE = 'mutation($e: String!) { createUser(data: {email: $e, name: "x"}) { email } }'


def test_registered_servers_deliver_only_their_own_events(
    first: Runtime,  # noqa: F811
    second: Runtime,  # noqa: F811
    platform: Platform,  # noqa: F811
    user_database: Callable[[], UserDatabase],  # noqa: F811
) -> None:
    servers = [private(), private()]
    service = f"feed{secrets.token_hex(3)}"
    for server in servers:
        body = server.body(user_database().entry())
        assert operator(first, platform, "PUT", f"/{server.name}", body).status == 201
        server.deploy(first, service, USER)
    port = int(first.url.rsplit(":", 1)[1])
    subscribers = []
    for server in servers:
        # The server is chosen by the Host header: the URL names it, the socket is loopback's.
        sock = socket.create_connection(("127.0.0.1", port))
        sub = Subscriber(f"http://{server.host}:{port}/{service}/dev", sock=sock)
        assert sub.init() == {"type": "connection_ack"}
        sub.start("1", "subscription { user { mutation node { email } } }")
        subscribers.append(sub)

    def write(server: Any, email: str) -> None:
        """A write through `second`, whose two worker processes each learn the servers on their
        own poll: "Unknown host" (404, nothing written) from the one that has not yet is retried."""
        body = {"query": CREATE, "variables": {"e": email}}

        def written() -> Any:
            answer = call(second.url, "POST", f"/{service}/dev", body, host=server.host)
            return None if answer.status == 404 else answer

        answer = eventually(written)
        assert answer is not None and "errors" not in answer.body, answer

    try:
        for server in servers:
            write(server, f"{server.name}@example.com")
        for server, sub in zip(servers, subscribers, strict=True):
            assert sub.data()[1] == {
                "user": {"mutation": "CREATED", "node": {"email": f"{server.name}@example.com"}}
            }
        # A second write to the first server: its subscriber hears it next, the other nothing.
        for server in servers[::-1]:
            write(server, f"again-{server.name}@example.com")
        for server, sub in zip(servers, subscribers, strict=True):
            assert sub.data()[1]["user"]["node"] == {"email": f"again-{server.name}@example.com"}
    finally:
        for sub in subscribers:
            sub.close()
        for server in servers:
            operator(first, platform, "DELETE", f"/{server.name}")
