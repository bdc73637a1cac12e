"""Subscriptions under pressure: a throttled sandbox, a subscriber that does not read, events
larger than a notification, and a thousand connections that come and go.

Each test runs its own runtime processes, so what it counts (connections, file descriptors,
threads of the process) belongs to it alone.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.runtime.conftest import Database, Runtime, run_runtime
from tests.runtime.management.test_management_api import add, deploy
from tests.runtime.subscriptions_client import StalledSubscriber, Subscriber
from tests.runtime.test_subscriptions import CREATE, DATAMODEL, UPDATE, create, write

pytestmark = [pytest.mark.multiprocess]

SUBSCRIPTION = "subscription { post { node { title } } }"

WAIT_SECONDS = 60  # for a state the test knows must come


def open_config(database: Database) -> dict[str, Any]:
    return {"databases": {"default": database.prisma_config()}}


def new_service(runtime: Runtime, name: str | None = None) -> str:
    name = name or f"lim{secrets.token_hex(4)}"
    add(runtime, "", name)
    deploy(runtime, "", name, DATAMODEL)
    return name


def test_a_throttled_sandbox_still_delivers(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A subscription counts as one request when it starts; its events are not requests."""
    sandbox = {
        **open_config(database),
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": 2, "perSeconds": 3600, "maxWaiting": 0},
    }
    logs = tmp_path_factory.mktemp("throttled")
    with run_runtime(sandbox, logs) as a, run_runtime(open_config(database), logs) as b:
        workspace = f"ws{secrets.token_hex(3)}"
        new_service(a, f"{workspace}~app")
        path = f"/{workspace}/app/dev"
        with Subscriber(a.url + path) as sub:
            assert sub.init() == {"type": "connection_ack"}
            sub.start("1", "subscription { post { mutation node { title } } }")  # request 1
            create(a, path, "through the sandbox")  # request 2: the bucket is empty now
            assert sub.data()[1] == {
                "post": {"mutation": "CREATED", "node": {"title": "through the sandbox"}}
            }
            sub.send(
                {
                    "type": "start",
                    "id": "2",
                    "payload": {"query": "subscription { post { mutation } }"},
                }
            )
            refused = sub.next()
            assert refused["id"] == "2" and refused["type"] == "error"
            assert refused["payload"]["code"] == 1004
            answer = a.post(path, {"query": "{ posts { id } }"})
            assert answer.body["errors"][0]["code"] == 1004
            # Writes through another process (not a sandbox) still reach the subscriber.
            for title in ("one", "two", "three"):
                create(b, path, title)
            assert [sub.data()[1]["post"]["node"]["title"] for _ in range(3)] == [
                "one",
                "two",
                "three",
            ]


def test_a_subscriber_that_does_not_read_is_dropped_and_writers_never_wait(
    database: Database, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUBSCRIPTION_BUFFER", "4")
    logs = tmp_path_factory.mktemp("slow")
    with run_runtime(open_config(database), logs) as a:
        path = f"/{new_service(a)}/dev"
        big = "x" * 200_000
        slow = StalledSubscriber(a.url, path)
        with Subscriber(a.url + path) as fast:
            slow.send({"type": "connection_init", "payload": {}})
            slow.send({"type": "start", "id": "1", "payload": {"query": SUBSCRIPTION}})
            fast.init()
            fast.start("1", SUBSCRIPTION)
            while json.loads(slow.frame()[1])["type"] != "connection_ack":
                pass
            writes = 120
            for i in range(writes):
                write(a, path, CREATE, title=f"{i}{big}", tags=[])
            # The writes were all answered; the reading subscriber got every event.
            titles = [fast.data()[1]["post"]["node"]["title"] for _ in range(writes)]
            assert titles == [f"{i}{big}" for i in range(writes)]
        # The stalled one, reading at last: some events, why it was dropped, and the close.
        messages = []
        while True:
            opcode, payload = slow.frame()
            if opcode == 8:  # close
                break
            messages.append(json.loads(payload))
        slow.close()
        assert int.from_bytes(payload[:2], "big") == 1013
        assert messages[-1]["type"] == "connection_error"
        assert "dropped" in messages[-1]["payload"]["message"]
        assert 0 < sum(1 for m in messages if m["type"] == "data") < writes


def test_events_larger_than_a_notification_arrive_whole(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """PostgreSQL's notifications hold under 8000 bytes; previous values can hold megabytes."""
    logs = tmp_path_factory.mktemp("large")
    with (
        run_runtime(open_config(database), logs) as a,
        run_runtime(open_config(database), logs) as b,
    ):
        path = f"/{new_service(a)}/dev"
        long_title = "é" * 300_000  # 600 KB in UTF-8, escaped to 1.8 MB of JSON
        post = write(b, path, CREATE, title=long_title, tags=["t"] * 2000)["createPost"]["id"]
        with Subscriber(a.url + path, max_size=None) as sub:
            sub.init()
            sub.start("1", "subscription { post { previousValues { title tags } updatedFields } }")
            write(b, path, UPDATE, id=post, data={"title": "short"})
            event = sub.data()[1]["post"]
            assert event["previousValues"] == {"title": long_title, "tags": ["t"] * 2000}
            assert event["updatedFields"] == ["title"]


def pg_connections(process: psutil.Process, port: int) -> int:
    return sum(1 for c in process.net_connections("tcp") if c.raddr and c.raddr.port == port)


def settled(measure: Any, limit: int) -> int:
    """The measure once it is at most `limit`, or its last value after WAIT_SECONDS (a closed
    connection is released by the server a moment after the client sees it closed)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        value = measure()
        if value <= limit or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_a_thousand_connections_that_come_and_go_leave_nothing_behind(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> None:
    logs: Path = tmp_path_factory.mktemp("cycles")
    with (
        run_runtime(open_config(database), logs) as a,
        run_runtime(open_config(database), logs) as b,
    ):
        path = f"/{new_service(a)}/dev"
        process = psutil.Process(a.process.pid)

        def cycle(i: int) -> None:
            with Subscriber(a.url + path) as sub:
                sub.init()
                sub.start("1", "subscription { post { node { id } } }")
                if i % 3 == 0:
                    sub.send({"type": "stop", "id": "1"})
                if i % 3 == 1:
                    sub.send({"type": "connection_terminate"})

        cycle(0)  # the listener's connection, pools and threads exist from here on
        baseline = (
            pg_connections(process, database.port),
            process.num_fds(),
            process.num_threads(),
        )
        for i in range(1000):
            cycle(i)
        assert settled(lambda: pg_connections(process, database.port), baseline[0]) == baseline[0]
        assert settled(process.num_fds, baseline[1]) <= baseline[1]
        assert settled(process.num_threads, baseline[2]) <= baseline[2]
        ports = [
            c.laddr.port
            for c in process.net_connections("tcp")
            if c.raddr and c.raddr.port == database.port
        ]
        with database.connect() as conn:
            listeners = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s) "
                "AND application_name = 'refract-runtime-listen'",
                [ports],
            ).fetchone()
        assert listeners is not None and listeners[0] == 1  # one per process with subscribers
        # And the process still delivers.
        with Subscriber(a.url + path) as sub:
            sub.init()
            sub.start("1", "subscription { post { node { title } } }")
            create(b, path, "still here")
            assert sub.data()[1] == {"post": {"node": {"title": "still here"}}}
