"""uvicorn's httptools protocol with a short road for small service requests.

A data API request is small and answered in one piece, yet through ASGI it costs a request
cycle, an event, a scope, a message dict per body chunk and per response part, and header
checks on every answer: about as much CPU as the rest of a by-id query. So a POST with a
`Content-Length` up to `BUFFERED_BODY_BYTES` (no `Expect`, no chunked body, HTTP/1.1) is read
whole by the protocol and handed to the app's `fast_post` (`RuntimeApp.fast_post`), which runs
it as the ASGI path would and gives back the status, the answer and its headers; the protocol
writes the response in one write. What `fast_post` declines (the management API, bodies over a
server's limit, registered servers...) goes on as an ordinary ASGI request with its body
already read. Everything else (GETs, websockets, big or chunked bodies) is uvicorn's, untouched.

A buffered request stands in uvicorn's per-connection state as a `BufferedCycle`, so its
bookkeeping keeps working: pipelined requests wait their turn, a lost connection marks the
request disconnected (the app's client watch cancels its statement), and a graceful shutdown
lets it finish and closes the connection after its answer.

The keep-alive timeout is kept as uvicorn keeps it (a connection idle that long after an answer
is closed), without uvicorn's timer per answer, made and cancelled when the next request
arrives: 3% of a buffered request's protocol instructions on uvloop (callgrind; 11% on
asyncio's own loop, whose timers are Python objects on a heap). A connection records when it
went idle; its one timer, when it fires, closes it if it has been idle the whole timeout, or is
armed again for the rest.

Writes within one event-loop step are coalesced (`CoalescingTransport`): ASGI hands a response
over in two messages, and on loopback TCP a `send` costs about as much as the rest of a small
answer's handling.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from runtime.envelope import CORS_HEADERS, dump

log = logging.getLogger("runtime")

BUFFERED_BODY_BYTES = 64 * 1024
_CORS = b"".join(name + b": " + value + b"\r\n" for name, value in CORS_HEADERS)
_DISCONNECT = {"type": "http.disconnect"}
_INTERNAL_SERVER_ERROR = (
    STATUS_LINE[500] + b"content-type: text/plain; charset=utf-8\r\ncontent-length: 21\r\n"
    b"connection: close\r\n\r\nInternal Server Error"
)


class CoalescingTransport:
    """A transport whose writes within one event-loop step reach the socket as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def write_now(self, data: bytes) -> None:
        """`data` to the socket at once (after anything still pending)."""
        if self._pending:
            self.flush()
        if not self._transport.is_closing():
            self._transport.write(data)

    def is_closing(self) -> bool:  # asked after every response: not through __getattr__
        return self._transport.is_closing()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BufferedCycle:
    """A buffered request in uvicorn's place for a `RequestResponseCycle`: the fields and the
    `message_event.set()` that uvicorn's protocol code reads and calls."""

    __slots__ = (
        "_waiters",
        "body",
        "disconnected",
        "keep_alive",
        "message_event",
        "more_body",
        "path",
        "queued",
        "response_complete",
        "scope",
    )

    def __init__(self, scope: dict[str, Any], path: str, keep_alive: bool) -> None:
        self.scope = scope
        self.path = path
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.more_body = True
        self.queued = False
        self.response_complete = False
        self.disconnected = False
        self.message_event = self
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        """uvicorn's protocol signals something happened (the connection was lost, say)."""
        if self.disconnected:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def receive(self) -> dict[str, Any]:
        """ASGI's `receive` after the body: returns once the client has gone away."""
        while not self.disconnected:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        return _DISCONNECT


class RuntimeHttpProtocol(HttpToolsProtocol):
    _headers_of: list[tuple[bytes, bytes]] | None = None  # uvicorn's default headers...
    _headers = b""  # ...joined (see `_default_headers`)
    _idle_since: float | None = None  # when the last answer left, if no request came since
    _idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._fast_post = getattr(self.app, "fast_post", None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    # Keep-alive (see the module's docstring) -----------------------------------------------

    def _unset_keepalive_if_required(self) -> None:
        """uvicorn calls it when data arrives (and when the connection is lost): busy again."""
        self._idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timer armed once per idle stretch."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = now = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(now + self.timeout_keep_alive, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # a request is running: its answer arms the timer again
        deadline = since + self.timeout_keep_alive
        if self.loop.time() >= deadline:
            self.timeout_keep_alive_handler()
        else:
            self._idle_timer = self.loop.call_at(deadline, self._idle_check)

    def on_headers_complete(self) -> None:
        if self._fast_post is None or not self._buffer():
            super().on_headers_complete()

    def _buffer(self) -> bool:
        """Take the request on the short road (see the module's docstring), or leave it."""
        parser = self.parser
        if (
            parser.get_method() != b"POST"
            or parser.get_http_version() != "1.1"
            or parser.should_upgrade()
            or self.limit_concurrency is not None
        ):
            return False
        length = None
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name in (b"transfer-encoding", b"expect"):
                return False
        if length is None or not length.isdigit() or int(length) > BUFFERED_BODY_BYTES:
            return False
        url = self.url
        if b"?" in url or b"%" in url or b"#" in url or not url.startswith(b"/"):
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path, parsed.query or b""
            path = raw_path.decode("ascii")
            if "%" in path:
                path = urllib.parse.unquote(path)
        else:  # a plain path, as clients send to an endpoint
            raw_path, query, path = url, b"", url.decode("ascii")
        scope = self.scope
        scope["method"] = "POST"
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = query
        cycle = BufferedCycle(scope, scope["path"], parser.should_keep_alive())
        running = self.cycle
        self.cycle = cycle  # type: ignore[assignment]
        if running is not None and not running.response_complete:
            # Pipelined behind a request still running: uvicorn starts it after that one.
            cycle.queued = True
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]
        return True

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if isinstance(cycle, BufferedCycle):
            if not cycle.response_complete:
                cycle.body.append(body)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if isinstance(cycle, BufferedCycle):
            cycle.more_body = False
            if not cycle.queued:
                self._start(cycle)
            return
        super().on_message_complete()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if isinstance(cycle, BufferedCycle):  # its turn after a pipelined request
            cycle.queued = False
            if not cycle.more_body:
                self._start(cycle)
            return
        super()._start_asgi_task(cycle, app)

    def _default_headers(self) -> bytes:
        """uvicorn's default headers (its `date`, renewed every second), as bytes: joined again
        only when uvicorn has replaced the list."""
        headers = self.server_state.default_headers
        if RuntimeHttpProtocol._headers_of is not headers:
            joined = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            RuntimeHttpProtocol._headers_of, RuntimeHttpProtocol._headers = headers, joined
        return RuntimeHttpProtocol._headers

    def _start(self, cycle: BufferedCycle) -> None:
        task = self.loop.create_task(self._run(cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _run(self, cycle: BufferedCycle) -> None:
        body = b"".join(cycle.body)
        cycle.body = []
        try:
            answer = await self._fast_post(cycle.path, cycle.scope["headers"], body, cycle.receive)
        except Exception:  # the app answers its own failures; this is a bug, as uvicorn says it
            log.exception("Exception in ASGI application")
            if not cycle.disconnected:
                self.transport.write_now(_INTERNAL_SERVER_ERROR)  # type: ignore[attr-defined]
                self.transport.close()
            return
        if answer is None:
            await self._as_asgi(cycle, body)
            return
        if cycle.disconnected:
            return
        status, payload, extra, request_id = answer
        content = payload if isinstance(payload, bytes) else dump(payload)
        response = b"%s%scontent-type: application/json\r\ncontent-length: %d\r\n" \
            b"request-id: %s\r\n%s%s%s%s" % (
                STATUS_LINE[status],
                self._default_headers(),
                len(content),
                request_id.encode(),
                _CORS,
                b"".join(name + b": " + value + b"\r\n" for name, value in extra) if extra else b"",
                b"\r\n" if cycle.keep_alive else b"connection: close\r\n\r\n",
                content,
            )  # fmt: skip
        if self.flow.write_paused:
            await self.flow.drain()
        self.transport.write_now(response)  # type: ignore[attr-defined]
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()

    async def _as_asgi(self, cycle: BufferedCycle, body: bytes) -> None:
        """A request `fast_post` declined, as uvicorn would have run it, its body read."""
        asgi = RequestResponseCycle(
            scope=cycle.scope,  # type: ignore[arg-type]
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=cycle.keep_alive,
            on_response=self.on_response_complete,
        )
        asgi.body = bytearray(body)
        asgi.more_body = False
        asgi.disconnected = cycle.disconnected
        asgi.message_event.set()  # the body is all there
        if self.cycle is cycle:
            self.cycle = asgi  # a disconnect or a shutdown now reaches the ASGI cycle
        await asgi.run_asgi(self.app)
