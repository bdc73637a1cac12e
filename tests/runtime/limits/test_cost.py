"""Cost limits of the data API through a real runtime: the statement timeout, cancelling the
statement of a client that went away, the response size limit, and one service's expensive
queries leaving connections to the others. The expensive query nests relations back and forth
four levels deep over 40 users who all wrote all 40 posts (`cost_support`)."""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.config import SANDBOX_RESPONSE_BYTES, SANDBOX_STATEMENT_TIMEOUT_MS, parse_config
from tests.runtime.conftest import Database, Runtime, run_runtime
from tests.runtime.limits.cost_support import (
    EXPENSIVE,
    LARGE,
    make_service,
    open_request,
    running,
    terminate,
    wait_for,
)

pytestmark = [pytest.mark.multiprocess]

GENEROUS = 300_000  # ms: far longer than any test waits for a statement to stop


@contextlib.contextmanager
def runtime_with(
    database: Database, tmp_path: Path, limits: dict[str, Any], **extra: Any
) -> Iterator[Runtime]:
    config = {"databases": {"default": database.prisma_config()}, "limits": limits, **extra}
    with run_runtime(config, tmp_path) as runtime:
        yield runtime


def expensive(n: int) -> dict[str, Any]:
    """The expensive query for one user (n=1), or a cheap one for nobody (n=0)."""
    return {"query": EXPENSIVE, "variables": {"name": "user 0" if n else "nobody"}}


@pytest.mark.parametrize("path", ["thread", "loop"])
def test_a_statement_past_the_timeout_is_answered_with_code_1000(
    database: Database, tmp_path: Path, service_name: str, path: str
) -> None:
    with runtime_with(database, tmp_path, {"statementTimeoutMs": 500}) as runtime:
        base = make_service(runtime, service_name)
        if path == "loop":  # the document compiled and the service fresh: the event loop runs it
            assert runtime.post(base, expensive(0)).body == {"data": {"users": []}}

        answer = runtime.post(base, expensive(1))

        assert answer.status == 200
        (error,) = answer.body["errors"]
        assert error["code"] == 1000
        assert error["message"] == (
            "The query took too long to process. Either try again later or try a simpler "
            "query. This server stops a statement after 0.5 s."
        )
        assert not running(database, service_name)
        # The connection it ran on serves the next request.
        assert runtime.post(base, {"query": "{ users(first: 1) { id } }"}).body == {
            "data": {"users": [{"id": "u0"}]}
        }


def test_the_management_api_is_not_held_to_the_data_timeout(
    database: Database, tmp_path: Path, service_name: str
) -> None:
    types = "\n".join(
        f"type T{i} {{ id: ID! @id  name: String! @unique  n: Int  other: [T{(i + 1) % 30}] }}"
        for i in range(30)
    )
    with runtime_with(database, tmp_path, {"statementTimeoutMs": 1}) as runtime:
        from tests.runtime.management.test_management_api import add, deploy

        add(runtime, "", service_name)
        deploy(runtime, "", service_name, types)  # 30 tables, 30 link tables: well over 1 ms
        assert len(database.tables(f"{service_name}$dev")) >= 60


@pytest.mark.parametrize("path", ["thread", "loop"])
def test_the_statement_of_a_client_that_went_away_is_cancelled(
    database: Database, tmp_path: Path, service_name: str, path: str
) -> None:
    with runtime_with(database, tmp_path, {"statementTimeoutMs": GENEROUS}) as runtime:
        base = make_service(runtime, service_name)
        if path == "loop":
            assert runtime.post(base, expensive(0)).body == {"data": {"users": []}}
        client = open_request(runtime, base, expensive(1))
        try:
            ((_pid, application),) = wait_for(
                lambda: running(database, service_name), 30, "the expensive statement"
            )
            assert application == ("refract-runtime-loop" if path == "loop" else "refract-runtime")
        finally:
            client.close()

        try:
            # It would run for minutes; cancelled, it stops within moments.
            wait_for(lambda: not running(database, service_name), 20, "the statement to stop")
        finally:
            terminate(database, [p for p, _ in running(database, service_name)])
        assert runtime.post(base, {"query": "{ posts(first: 1) { id } }"}).body == {
            "data": {"posts": [{"id": "p0"}]}
        }


def test_an_answer_over_the_response_limit_is_refused_before_it_reaches_the_runtime(
    database: Database, tmp_path: Path, service_name: str
) -> None:
    with runtime_with(database, tmp_path, {"responseBytes": 1_000_000}) as runtime:
        base = make_service(runtime, service_name)

        answer = runtime.post(base, {"query": LARGE})  # about 2.2 MB of JSON

        assert answer.body["data"] is None
        (error,) = answer.body["errors"]
        assert error["code"] == 2041
        assert error["path"] == ["users"]
        assert error["message"].startswith("The answer to this request would be 2.")
        assert "more than this server's limit of 1 MB per response" in error["message"]

        # The limit is for the whole answer: two fields of 0.6 MB each do not fit together.
        half = "users(first: 12) { name posts { title authors { id name } } }"
        one = runtime.post(base, {"query": f"{{ a: {half} }}"})
        assert "errors" not in one.body and len(one.body["data"]["a"]) == 12
        two = runtime.post(base, {"query": f"{{ a: {half} b: {half} }}"})
        assert [e["path"] for e in two.body["errors"]] == [["b"]]
        # A mutation's answer is held to it too, and the refused field changes nothing.
        mutation = (
            'mutation { updateUser(where: {id: "u0"}, data: {name: "renamed"}) '
            "{ posts { authors { posts { id title } } } } }"
        )
        refused = runtime.post(base, {"query": mutation})
        assert refused.body["errors"][0]["code"] == 2041
        user = runtime.post(base, {"query": '{ user(where: {id: "u0"}) { name } }'})
        assert user.body == {"data": {"user": {"name": "user 0"}}}


def test_a_sandbox_has_a_timeout_and_a_response_limit_by_default() -> None:
    base = {"databases": {"default": {"connector": "postgres"}}, "redisUrl": "redis://r"}
    sandbox = parse_config({**base, "sandbox": True}, {}).servers[0].limits
    assert sandbox.statement_timeout_ms == SANDBOX_STATEMENT_TIMEOUT_MS == 10_000
    assert sandbox.response_bytes == SANDBOX_RESPONSE_BYTES == 10 * 1024 * 1024
    private = parse_config(base, {}).servers[0].limits
    assert private.statement_timeout_ms is None and private.response_bytes is None
    chosen = {"statementTimeoutMs": 2500, "responseBytes": 0}
    limits = parse_config({**base, "sandbox": True, "limits": chosen}, {}).servers[0].limits
    assert limits.statement_timeout_ms == 2500 and limits.response_bytes is None


def test_one_services_expensive_queries_leave_connections_to_the_others(
    database: Database, tmp_path: Path, service_name: str
) -> None:
    expensive_service, calm_service = service_name, f"{service_name}calm"
    db = {**database.prisma_config(), "connectionLimit": 8}  # 6 for the loop, 2 for threads
    config = {
        "databases": {"default": db},
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": 1000, "perSeconds": 1, "maxWaiting": 100},
        "limits": {"statementTimeoutMs": GENEROUS},
    }
    with run_runtime(config, tmp_path) as runtime:
        heavy = make_service(runtime, expensive_service)
        calm = make_service(runtime, calm_service)
        assert runtime.post(heavy, expensive(0)).body == {"data": {"users": []}}
        clients = [open_request(runtime, heavy, expensive(1)) for _ in range(8)]
        try:
            wait_for(lambda: running(database, expensive_service), 30, "the expensive statements")

            # The other service answers, on the event loop and in a worker thread, while the
            # expensive statements still run.
            for index in range(3):
                query = {"query": f"{{ posts(first: 1) {{ id }} n{index}: __typename }}"}
                for _ in range(2):  # a new document (a thread), then the same (the loop)
                    answer = post(runtime, calm, query)
                    assert answer["data"]["posts"] == [{"id": "p0"}]
            assert running(database, expensive_service)
        finally:
            for client in clients:
                client.close()
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not running(database, expensive_service), 20, "cancels")
            terminate(database, [p for p, _ in running(database, expensive_service)])


def post(runtime: Runtime, path: str, payload: Any) -> Any:
    """A request that must be answered within a generous 20 s (a starved one waits 30 s for a
    connection)."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        runtime.url + path,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())
