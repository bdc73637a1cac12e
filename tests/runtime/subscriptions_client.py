"""A `graphql-ws` client for the subscription tests: the Python `websockets` library, nothing of
the runtime. `sync()` is the tests' barrier: the runtime handles a connection's messages in
order, so once the `complete` of a `stop` sent after a `start` comes back, that subscription is
listening, and every write that commits from then on reaches it."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import struct
import time
from typing import Any

from websockets.sync.client import ClientConnection, connect

PROTOCOL = "graphql-ws"
WAIT_SECONDS = 30  # for a message the test knows must come


class Subscriber:
    def __init__(self, url: str, headers: dict[str, str] | None = None, **options: Any) -> None:
        self.ws: ClientConnection = connect(
            url.replace("http://", "ws://"),
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            additional_headers=headers,
            open_timeout=WAIT_SECONDS,
            **options,
        ).__enter__()

    def send(self, message: dict[str, Any] | str) -> None:
        self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def receive(self) -> dict[str, Any]:
        """The next message other than a keep-alive."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.0, deadline - time.monotonic())))
            if message.get("type") != "ka":
                return message

    def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        self.send({"type": "connection_init", "payload": payload or {}})
        return self.receive()

    def start(
        self,
        subscription_id: str | int,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> None:
        payload = {"query": query, "variables": variables, "operationName": operation_name}
        self.send({"type": "start", "id": subscription_id, "payload": payload})
        self.sync()

    def sync(self) -> None:
        """Wait until the runtime has handled every message sent before (see the docstring)."""
        marker = f"sync-{secrets.token_hex(4)}"
        self.send({"type": "stop", "id": marker})
        while True:
            message = self.receive()
            if message == {"id": marker, "type": "complete"}:
                return
            self.pending.append(message)

    @property
    def pending(self) -> list[dict[str, Any]]:
        if not hasattr(self, "_pending"):
            self._pending: list[dict[str, Any]] = []
        return self._pending

    def next(self) -> dict[str, Any]:
        """The next message after those `sync` set aside."""
        if self.pending:
            return self.pending.pop(0)
        return self.receive()

    def data(self) -> tuple[Any, Any]:
        """The next `data` message: (its id, its data)."""
        message = self.next()
        assert message["type"] == "data", message
        assert set(message["payload"]) == {"data"}, message
        return message["id"], message["payload"]["data"]

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class StalledSubscriber:
    """A subscriber that stops reading: a bare socket with a small receive buffer (Linux would
    grow it to tens of megabytes) that speaks just enough of the websocket protocol. A client
    library keeps reading into its own memory, so it cannot stall a server."""

    def __init__(self, url: str, path: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        self.sock.settimeout(WAIT_SECONDS)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {PROTOCOL}\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode()
        mask = os.urandom(4)
        size = (
            bytes([0x80 | len(data)]) if len(data) < 126 else b"\xfe" + struct.pack("!H", len(data))
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(b"\x81" + size + mask + masked)

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload); fragments are not expected."""
        first, second = self._read(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._read(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._read(8))[0]
        return first & 0x0F, self._read(size)

    def close(self) -> None:
        self.sock.close()
