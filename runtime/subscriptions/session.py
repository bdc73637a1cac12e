"""One websocket connection speaking `graphql-ws` (subscriptions-transport-ws), as Prisma does.

Client to server: `connection_init` (its payload's `Authorization`, or `authorization`, holds
the service token; the upgrade request's `Authorization` header is taken when the payload has
none), `start` (`id`, `payload: {query, variables, operationName}`), `stop`,
`connection_terminate`. Server to client: `connection_ack`, `connection_error`, `ka` (right
after the ack and every `KEEP_ALIVE_SECONDS`), `data`, `error`, `complete` (after a `stop`).
Messages and errors are worded as in Prisma's `SubscriptionSessionActor`.

Every message to the client goes through a bounded buffer that one writer task drains. Events
are put there without waiting; a subscriber whose buffer is full (it does not read as fast as
events come) is dropped: its subscriptions end at once, and the client gets a
`connection_error` saying why, then the close (code 1013), once it reads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from runtime.auth import verify_service
from runtime.directory import ServiceEntry
from runtime.envelope import INTERNAL_ERROR
from runtime.errors import PrismaError
from runtime.sandbox import SandboxPolicy
from runtime.subscriptions.events import EventSink
from runtime.subscriptions.hub import Listener, Subscription
from runtime.subscriptions.query import SubscriptionError, prepare
from runtime.throttle import Throttled

log = logging.getLogger("runtime")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PROTOCOL = "graphql-ws"
KEEP_ALIVE_SECONDS = 10.0  # Prisma's `keepAliveIntervalSeconds`
# Messages waiting for a client before it is dropped as too slow (`SUBSCRIPTION_BUFFER`).
BUFFER_MESSAGES = int(os.environ.get("SUBSCRIPTION_BUFFER", "1000"))
MAX_SUBSCRIPTIONS = 100  # per connection
# A connection that has not been acknowledged by then is closed.
INIT_TIMEOUT_SECONDS = 60.0
TOO_SLOW_CLOSE = 1013  # "try again later"
CLOSE_SECONDS = 10.0  # for the last messages and the close frame of a session that ends

CANNOT_PARSE = '{"id":"","payload":{"message":"The message can\'t be parsed"},"type":"error"}'
INIT_FIRST = "You have to send an init message before sending anything else."
NO_AUTHORIZATION = "No Authorization field was provided in payload."
INVALID_TOKEN = "Authentication token is invalid."  # noqa: S105 - a message


@dataclass
class ServiceHandle:
    """What a session needs of the app: the service's current entry, its event channel, the
    listener of its server and its sandbox policy (None off sandboxes)."""

    project_id: str
    load: Callable[[], Awaitable[ServiceEntry]]
    sink: EventSink
    listener: Listener
    sandbox: SandboxPolicy | None
    request_id: Callable[[], str]


class Session:
    def __init__(
        self, service: ServiceHandle, receive: Receive, send: Send, header_token: str | None
    ) -> None:
        self.service = service
        self.receive = receive
        self.send = send
        self.header_token = header_token
        self.buffer: deque[str] = deque()
        self.wakeup = asyncio.Event()
        self.subscriptions: dict[Any, Subscription] = {}
        self.initialised = False
        self.closing: int | None = None  # the close code, once the session ends
        self.dropped = False

    # Called by the hub (never waits) --------------------------------------------------------

    def deliver(self, message: str) -> None:
        if self.closing is not None:
            return
        if len(self.buffer) >= BUFFER_MESSAGES:
            self._drop_too_slow()
            return
        self.buffer.append(message)
        self.wakeup.set()

    def failed(self, subscription_id: Any, message: str) -> None:
        subscription = self.subscriptions.pop(_key(subscription_id), None)
        if subscription is not None:
            self.service.listener.remove(subscription)
            self.deliver(_error(subscription_id, message))

    def _drop_too_slow(self) -> None:
        log.warning(
            "subscriptions: a subscriber of %s was too slow; dropped", self.service.project_id
        )
        self.dropped = True
        self._end_subscriptions()
        self.buffer.clear()
        message = (
            f"This connection was dropped: more than {BUFFER_MESSAGES} messages were waiting "
            f"for it to read them. Read events as they come, or subscribe to fewer."
        )
        self.buffer.append(_connection_error(message))
        self.closing = TOO_SLOW_CLOSE
        self.wakeup.set()

    # The connection --------------------------------------------------------------------------

    async def run(self) -> None:
        await self.send({"type": "websocket.accept", "subprotocol": PROTOCOL})
        loop = asyncio.get_running_loop()
        writer = loop.create_task(self._write())
        keep_alive = loop.create_task(self._keep_alive())
        try:
            while self.closing is None:
                message = await self.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if message["type"] != "websocket.receive":
                    continue
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", "replace")
                try:
                    await self._handle(text or "")
                except Exception:
                    # The database cannot be reached, say: Prisma's top-level answer.
                    request_id = self.service.request_id()
                    log.exception("subscriptions: request %s failed", request_id)
                    self.deliver(_connection_error(INTERNAL_ERROR.format(request_id)))
        finally:
            self._end_subscriptions()
            keep_alive.cancel()
            if self.closing is None:
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keep_alive
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(writer, CLOSE_SECONDS)

    async def _write(self) -> None:
        """Send the buffered messages in order; after the last one of a closing session, the
        close frame."""
        while True:
            if not self.buffer:
                if self.closing is not None:
                    with contextlib.suppress(Exception):
                        await self.send({"type": "websocket.close", "code": self.closing})
                    return
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            message = self.buffer.popleft()
            try:
                await self.send({"type": "websocket.send", "text": message})
            except Exception:  # the client went away; the receive loop sees it too
                self.closing = self.closing or 1006
                return

    async def _keep_alive(self) -> None:
        """`ka` every `KEEP_ALIVE_SECONDS` once acknowledged; an unacknowledged connection is
        closed after `INIT_TIMEOUT_SECONDS`."""
        waited = 0.0
        while True:
            await asyncio.sleep(KEEP_ALIVE_SECONDS)
            waited += KEEP_ALIVE_SECONDS
            if self.initialised:
                if not self.buffer:  # a busy connection shows it is alive anyway
                    self.deliver('{"type":"ka"}')
            elif waited >= INIT_TIMEOUT_SECONDS:
                self._close(1008)
                return

    def _close(self, code: int) -> None:
        if self.closing is None:
            self.closing = code
            self.wakeup.set()

    def _end_subscriptions(self) -> None:
        subscriptions, self.subscriptions = self.subscriptions, {}
        for subscription in subscriptions.values():
            self.service.listener.remove(subscription)

    # Messages --------------------------------------------------------------------------------

    async def _handle(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in ("connection_init", "connection_terminate", "start", "stop"):
            self.deliver(CANNOT_PARSE)
            return
        assert isinstance(message, dict)
        if kind in ("start", "stop") and not isinstance(message.get("id"), str | int):
            self.deliver(CANNOT_PARSE)
            return
        if kind == "connection_init":
            if not self.initialised:
                await self._init(message.get("payload"))
        elif not self.initialised:
            self.deliver(_connection_error(INIT_FIRST))
        elif kind == "connection_terminate":
            self._close(1000)
        elif kind == "start":
            await self._start(message["id"], message.get("payload"))
        else:
            self._stop(message["id"])

    async def _init(self, payload: Any) -> None:
        token = None
        if isinstance(payload, dict):
            token = payload.get("Authorization")
            if not isinstance(token, str):
                token = payload.get("authorization")
            if not isinstance(token, str):
                token = None
        token = token or self.header_token
        entry = await self.service.load()
        if entry.state is None:
            self.deliver(_connection_error(f"Project not found: '{self.service.project_id}'"))
            return
        if entry.state.secrets:
            if not token:
                self.deliver(_connection_error(NO_AUTHORIZATION))
                return
            try:
                verify_service(entry.state.secrets, token)
            except PrismaError:
                self.deliver(_connection_error(INVALID_TOKEN))
                return
        self.initialised = True
        self.deliver('{"type":"connection_ack"}')
        self.deliver('{"type":"ka"}')

    async def _start(self, subscription_id: Any, payload: Any) -> None:
        key = _key(subscription_id)
        if key not in self.subscriptions and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            message = f"A connection holds at most {MAX_SUBSCRIPTIONS} subscriptions."
            self.deliver(_error(subscription_id, message))
            return
        sandbox = self.service.sandbox
        if sandbox is not None:
            # On a sandbox a subscription counts as one request when it starts.
            try:
                await sandbox.admit(self.service.project_id)
            except Throttled as exc:
                answer = exc.answer(self.service.request_id())["errors"][0]
                self.deliver(_error(subscription_id, answer["message"], answer["code"]))
                return
        entry = await self.service.load()
        if entry.state is None or entry.api is None:
            message = f"Project not found: '{self.service.project_id}'"
            self.deliver(_error(subscription_id, message))
            return
        try:
            query = prepare(entry.api, payload)
        except SubscriptionError as exc:
            self.deliver(_error(subscription_id, exc.message))
            return
        previous = self.subscriptions.pop(key, None)
        if previous is not None:
            self.service.listener.remove(previous)
        subscription = Subscription(
            session=self,
            id=subscription_id,
            project_id=self.service.project_id,
            channel=self.service.sink.channel,
            schema_sql=entry.schema_sql,
            query=query,
        )
        if self.closing is not None:
            return
        self.subscriptions[key] = subscription
        try:
            await self.service.listener.add(subscription)
        except Exception:
            self.subscriptions.pop(key, None)
            raise
        if self.closing is not None or self.subscriptions.get(key) is not subscription:
            self.service.listener.remove(subscription)  # ended while LISTEN ran

    def _stop(self, subscription_id: Any) -> None:
        subscription = self.subscriptions.pop(_key(subscription_id), None)
        if subscription is not None:
            self.service.listener.remove(subscription)
        self.deliver(json.dumps({"id": subscription_id, "type": "complete"}))


def _key(subscription_id: Any) -> tuple[str, Any]:
    """Ids `1` and `"1"` are different operations."""
    return (type(subscription_id).__name__, subscription_id)


def _error(subscription_id: Any, message: str, code: int | None = None) -> str:
    payload: dict[str, Any] = {"message": message}
    if code is not None:
        payload["code"] = code
    return json.dumps({"id": subscription_id, "payload": payload, "type": "error"})


def _connection_error(message: str) -> str:
    return json.dumps({"payload": {"message": message}, "type": "connection_error"})
