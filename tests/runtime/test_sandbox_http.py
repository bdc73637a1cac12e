"""Sandbox limits through HTTP: two runtime processes sharing one Redis, and the storage cap.

What the throttle counts is checked on `strict` sandboxes: 6 requests an hour and no queue, so
within a test no slot comes back and each answer is exact (admitted or refused with 1004)
however slow the machine. How long requests wait is the throttle's own test
(tests/runtime/limits/test_throttle.py, on a clock the test moves); here a fast rate (4 per
second) checks that waiting requests are answered and say how long they were held.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import Database, Response, Runtime, run_runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

RATE = 4  # per second: a slot every 250 ms, a burst of 4
MAX_WAITING = 5
STRICT_RATE = 6  # per hour, nobody waits: the 7th request in an hour is refused
VALIDATE = {
    "query": "query($q: String!) { validateSubscriptionQuery(query: $q) { errors } }",
    "variables": {"q": "subscription { x }"},
}
NOTES = {"query": "{ notes { id } }"}


def sandbox_pair(
    database: Database, logs: Path, sandbox: dict[str, Any]
) -> Iterator[tuple[Runtime, Runtime]]:
    config = {
        "databases": {"default": database.prisma_config()},
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": sandbox,
    }
    with run_runtime(config, logs) as first, run_runtime(config, logs) as second:
        yield first, second


@pytest.fixture(scope="module")
def sandboxes(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, Runtime]]:
    limits = {"rate": RATE, "perSeconds": 1, "maxWaiting": MAX_WAITING, "storageMb": 0.5}
    yield from sandbox_pair(database, tmp_path_factory.mktemp("sandbox"), limits)


@pytest.fixture(scope="module")
def strict(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, Runtime]]:
    limits = {"rate": STRICT_RATE, "perSeconds": 3600, "maxWaiting": 0}
    yield from sandbox_pair(database, tmp_path_factory.mktemp("strict"), limits)


def throttled_by(response: Response) -> int:
    return int(response.headers["throttled-by"].removesuffix("ms"))


def timed_post(runtime: Runtime, path: str, payload: Any = VALIDATE) -> tuple[Response, float]:
    started = time.monotonic()
    response = runtime.post(path, payload)
    return response, (time.monotonic() - started) * 1000


def burst(targets: list[tuple[Runtime, str]]) -> list[tuple[Response, float]]:
    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(lambda target: timed_post(*target), targets))


def service(runtime: Runtime, name: str, datamodel: str = "type Note { id: ID! @id }") -> str:
    add(runtime, "", name)
    deploy(runtime, "", name, datamodel)
    return f"/{name}/dev"


def is_throttled(response: Response) -> bool:
    errors = response.body.get("errors") if isinstance(response.body, dict) else None
    return bool(errors) and errors[0]["code"] == 1004


def test_two_processes_draw_on_one_bucket(strict, service_name):
    first, second = strict
    path = service(first, service_name) + "/private"

    results = burst([(first, path), (second, path)] * STRICT_RATE)  # 12 requests, 6 each

    admitted = [r for r, _ in results if not is_throttled(r)]
    refused = [r for r, _ in results if is_throttled(r)]
    # One bucket for both processes: 6 in all. (A bucket each would have admitted all 12.)
    assert len(admitted) == STRICT_RATE
    assert all(r.status == 200 and "errors" not in r.body for r in admitted)
    for response in refused:
        assert response.status == 200
        assert response.body["errors"][0]["message"] == (
            "There are too many concurrent queries for this service."
        )
    # Every answer says how long it was held: nobody waited.
    assert [throttled_by(r) for r, _ in results] == [0] * len(results)


def test_each_operation_of_a_batch_counts_as_a_request(strict, service_name):
    first, second = strict
    path = service(first, service_name)

    batch = first.post(path, [NOTES] * 4)
    assert batch.body == [{"data": {"notes": []}}] * 4
    assert throttled_by(batch) == 0
    assert second.post(path, NOTES).body == {"data": {"notes": []}}
    assert first.post(path, [NOTES]).body == [{"data": {"notes": []}}]  # 6 of 6 used
    over = second.post(path, NOTES)
    assert is_throttled(over), "the batches spent the service's 6 requests"
    assert first.post(path, [NOTES, NOTES]).body["errors"][0]["code"] == 1004


def test_a_batch_that_could_never_run_is_refused_at_once_with_the_numbers(strict, service_name):
    first, _ = strict
    path = service(first, service_name)

    refused = first.post(path, [NOTES] * 500)

    assert refused.status == 200
    assert throttled_by(refused) == 0
    (error,) = refused.body["errors"]
    assert error["code"] == 1004
    assert error["message"] == (
        "This request holds 500 operations, and each counts as a request: a service here runs "
        "6 requests per 3600 seconds, at most 6 at once (6 straight away and 0 waiting). Send "
        "at most 6 operations per request."
    )
    # It took nothing: the whole budget is still there.
    assert first.post(path, [NOTES] * STRICT_RATE).body == [{"data": {"notes": []}}] * 6


def aliases(count: int) -> str:
    return " ".join(f"n{i}: notes {{ id }}" for i in range(count))


def test_a_document_over_25_root_fields_is_refused_with_a_clear_error(strict, service_name):
    first, second = strict
    path = service(first, service_name)

    assert first.post(path, {"query": f"{{ {aliases(25)} }}"}).body["data"]["n24"] == []
    over = {"query": f"{{ {aliases(26)} }}"}
    spread = {"query": f"{{ ...A ...A }} fragment A on Query {{ {aliases(1000)} }}"}
    # Twice the same document: planned in a worker thread, then from the cache on the loop.
    answers = [first.post(path, over), first.post(path, over), second.post(path, spread)]

    for answer, selected in zip(answers, (26, 26, 1000), strict=True):
        assert answer.status == 200
        (error,) = answer.body["errors"]
        assert "data" not in answer.body
        assert error["code"] == 1001
        assert error["message"] == (
            f"This operation selects {selected} root fields (aliases and fragments included); "
            "this server runs at most 25 per operation, as each is a statement of its own. "
            "Split it into several requests."
        )
    creates = " ".join(f"c{i}: createNote(data: {{}}) {{ id }}" for i in range(26))
    refused = second.post(path, {"query": f"mutation {{ {creates} }}"})
    assert refused.body["errors"][0]["code"] == 1001
    assert first.post(path, {"query": "{ notesConnection { aggregate { count } } }"}).body == {
        "data": {"notesConnection": {"aggregate": {"count": 0}}}
    }, "the refused mutation ran nothing"
    # Each refused document was still a request: 6 of 6 are spent.
    assert is_throttled(first.post(path, NOTES))


def test_waiting_requests_are_answered_and_say_how_long_they_were_held(sandboxes, service_name):
    first, second = sandboxes
    path = service(first, service_name) + "/private"

    results = burst([(first, path), (second, path)] * 4)  # 8 requests, 4 through each process

    for response, latency in results:
        assert response.status == 200 and "errors" not in response.body
        # Held that long, it could not have been answered sooner.
        assert latency >= throttled_by(response)


def test_the_management_api_is_not_throttled(sandboxes):
    first, _ = sandboxes

    answers = [
        first.post("/management", {"query": "{ serverInfo { version } }"}) for _ in range(12)
    ]

    assert all(a.status == 200 and "throttled-by" not in a.headers for a in answers)


def test_past_the_storage_cap_writes_are_refused_and_reads_still_work(sandboxes, service_name):
    first, second = sandboxes
    add(first, "", service_name)
    deploy(first, "", service_name, "type Blob { id: ID! @id  text: String! }")
    base = f"/{service_name}/dev"
    chunk = [
        # Random text: PostgreSQL compresses repetitive values, and the cap counts real bytes.
        {"_typeName": "Blob", "id": f"b{i:05d}", "text": secrets.token_urlsafe(1500)}
        for i in range(60)
    ]

    refused = None
    accepted = 0
    for round_ in range(40):  # 0.5 MB cap, ~120 kB a round: refused well before the end
        values = [{**v, "id": f"r{round_}-{v['id']}"} for v in chunk]
        answer = first.post(f"{base}/import", {"valueType": "nodes", "values": values})
        if isinstance(answer.body, dict) and "errors" in answer.body:
            refused = answer
            break
        assert answer.body == []
        accepted += len(values)

    assert refused is not None, "the storage cap never refused a write"
    assert refused.body["errors"][0]["code"] == 1003
    assert "storage limit" in refused.body["errors"][0]["message"]
    assert "rolled back" in refused.body["errors"][0]["message"]
    read = second.post(f"{base}/export", {"fileType": "nodes"})
    assert read.status == 200 and read.body["out"]["jsonElements"]
    query = first.post(base, {"query": "{ blobsConnection { aggregate { count } } }"})
    # The refused import left nothing behind.
    assert query.body["data"]["blobsConnection"]["aggregate"]["count"] == accepted
    create = {"query": 'mutation { createBlob(data: {text: "one more"}) { id } }'}

    # Deletes still go through at the cap, and bring the service back under it.
    delete = {"query": "mutation { deleteManyBlobs { count } }"}
    assert first.post(base, delete).body["data"]["deleteManyBlobs"]["count"] > 0
    # The other process trusts its cached measure for a while: wait until it measures again.
    deadline = time.monotonic() + 30
    while True:
        again = second.post(f"{base}/import", {"valueType": "nodes", "values": chunk[:1]})
        if again.body == [] or time.monotonic() > deadline:
            break
        assert again.body["errors"][0]["code"] == 1003
        time.sleep(0.2)
    assert again.body == []
    assert "id" in second.post(base, create).body["data"]["createBlob"]


def test_a_deploy_through_one_process_reaches_the_other(sandboxes, service_name):
    first, second = sandboxes
    add(first, "", service_name)
    deploy(first, "", service_name, "type Note { id: ID! @id }")
    url = f"/{service_name}/dev"
    assert second.post(url, {"query": "{ notes { id } }"}).body == {"data": {"notes": []}}

    deploy(first, "", service_name, "type Note { id: ID! @id  text: String }")

    deadline = time.monotonic() + 10  # the other process re-reads a service within a second
    while True:
        answer = second.post(url, {"query": "{ notes { id text } }"}).body
        if "errors" not in answer or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer == {"data": {"notes": []}}
