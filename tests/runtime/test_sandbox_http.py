"""Sandbox limits through HTTP: two runtime processes sharing one Redis, and the storage cap.

The rate here is 4 per second instead of the sandbox's 10 per 10 seconds: the same logic,
faster tests.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.runtime.conftest import Database, Response, Runtime, run_runtime
from tests.runtime.test_management_api import add, deploy

RATE = 4  # per second: a slot every 250 ms, a burst of 4
MAX_WAITING = 5
VALIDATE = {
    "query": "query($q: String!) { validateSubscriptionQuery(query: $q) { errors } }",
    "variables": {"q": "subscription { x }"},
}


@pytest.fixture(scope="module")
def sandboxes(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, Runtime]]:
    config = {
        "databases": {"default": database.prisma_config()},
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": RATE, "perSeconds": 1, "maxWaiting": MAX_WAITING, "storageMb": 0.5},
    }
    logs: Path = tmp_path_factory.mktemp("sandbox")
    with run_runtime(config, logs) as first, run_runtime(config, logs) as second:
        yield first, second


def throttled_by(response: Response) -> int:
    return int(response.headers["throttled-by"].removesuffix("ms"))


def timed_post(runtime: Runtime, path: str) -> tuple[Response, float]:
    started = time.monotonic()
    response = runtime.post(path, VALIDATE)
    return response, (time.monotonic() - started) * 1000


def burst(targets: list[tuple[Runtime, str]]) -> list[tuple[Response, float]]:
    with ThreadPoolExecutor(len(targets)) as pool:
        return list(pool.map(lambda target: timed_post(*target), targets))


def test_a_burst_from_two_processes_is_held_to_the_rate(sandboxes, service_name):
    first, second = sandboxes
    add(first, "", service_name)
    deploy(first, "", service_name, "type Note { id: ID! @id }")
    path = f"/{service_name}/dev/private"

    results = burst([(first, path), (second, path)] * 4)  # 8 requests, 4 through each process

    assert all(r.status == 200 and "errors" not in r.body for r, _ in results)
    delays = sorted(throttled_by(r) for r, _ in results)
    assert delays[:RATE] == [0] * RATE  # the burst goes through at once
    waited = delays[RATE:]
    # Each further request gets the next 250 ms slot, whichever process it came through.
    for index, delay in enumerate(waited, start=1):
        assert abs(delay - index * 250) <= 100, delays
    fastest = min(latency for _, latency in results)
    for response, latency in results:
        assert abs((latency - fastest) - throttled_by(response)) <= 100


def test_past_the_queue_a_request_is_refused_at_once_and_other_services_are_not_slowed(
    sandboxes, service_name
):
    first, second = sandboxes
    other = f"{service_name}x"
    for name in (service_name, other):
        add(first, "", name)
        deploy(first, "", name, "type Note { id: ID! @id }")
    path = f"/{service_name}/dev/private"

    results = burst([(first, path), (second, path)] * ((RATE + MAX_WAITING + 2) // 2))
    calm, _ = timed_post(second, f"/{other}/dev/private")

    refused = [(r, latency) for r, latency in results if "errors" in r.body]
    assert len(refused) >= 1
    for response, latency in refused:
        assert response.status == 200
        assert response.body["errors"][0]["code"] == 1004
        assert response.body["errors"][0]["message"] == (
            "There are too many concurrent queries for this service."
        )
        assert throttled_by(response) == 0
        assert latency < min(t for r, t in results if "errors" not in r.body and throttled_by(r))
    assert throttled_by(calm) == 0
    assert "errors" not in calm.body


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
    time.sleep(2.1)  # the other process trusts its cached measure for 2 s
    again = second.post(f"{base}/import", {"valueType": "nodes", "values": chunk[:1]})
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
