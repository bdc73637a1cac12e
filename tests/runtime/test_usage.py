"""Usage counts through HTTP: a known mix of requests (delayed, refused by the throttle, refused
at the storage cap, errors, batches, inlined values) through two runtime processes on one
database, read back from the management API and from `GET /metrics`; both must match the mix
exactly. What the throttle does to each request is read from its answer (the `Throttled-By`
header, code 1004), so the expected figures do not depend on how busy the machine is.
"""

from __future__ import annotations

import os
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.runtime.conftest import (
    MANAGEMENT_SECRET,
    Database,
    Response,
    Runtime,
    management_token,
    run_async,
    run_runtime,
)
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

METRICS_TOKEN = "metrics-" + "0123456789abcdef"
DATAMODEL = "type Note { id: ID! @id  text: String }\ntype Blob { id: ID! @id  text: String! }"
NOTES = {"query": "query Notes { notes { id } }"}
USAGE = (
    "query($n: String!, $s: String!, $w: String!) { serviceUsage(name: $n, stage: $s, window: $w) }"
)
SUMMARY = "query($services: [UsageServiceInput!]!) { usageSummary(services: $services) }"


@pytest.fixture(scope="module")
def pair(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Runtime, Runtime]]:
    config = {
        "managementApiSecret": MANAGEMENT_SECRET,
        "databases": {"default": database.prisma_config()},
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": 4, "perSeconds": 1, "maxWaiting": 3, "storageMb": 0.3},
        "metrics": {"token": METRICS_TOKEN},
    }
    logs = tmp_path_factory.mktemp("usage")
    with run_runtime(config, logs) as first, run_runtime(config, logs) as second:
        yield first, second


@dataclass
class Mix:
    """What a client saw: the figures the runtime must report for the service."""

    requests: int = 0
    operations: int = 0
    errors: int = 0
    throttled: int = 0
    delay_ms: int = 0
    refused: int = 0
    storage_refused: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    errors_by_operation: Counter[str] = field(default_factory=Counter)

    def send(self, runtime: Runtime, path: str, payload: Any, label: str | list[str]) -> Response:
        response = runtime.post(path, payload, token=None)
        self.note(response, payload, label)
        return response

    def note(self, response: Response, payload: Any, label: str | list[str] | None) -> None:
        self.requests += 1
        items = payload if isinstance(payload, list) else [payload]
        self.operations += len(items)
        body = response.body
        answers = body if isinstance(body, list) else [body]
        failed = [isinstance(a, dict) and bool(a.get("errors")) for a in answers]
        codes = [e.get("code") for a in answers if isinstance(a, dict) for e in a.get("errors", [])]
        refused = 1004 in codes
        self.errors += any(failed) or response.status >= 400
        self.refused += refused
        self.storage_refused += 1003 in codes
        delay = int(response.headers.get("throttled-by", "0ms").removesuffix("ms"))
        self.throttled += delay > 0
        self.delay_ms += delay
        if label is None or refused:
            return
        labels = label if isinstance(label, list) else [label] * len(items)
        for name, bad in zip(labels, failed, strict=True):
            self.by_operation[name] += 1
            self.errors_by_operation[name] += bad


def usage(
    runtime: Runtime, name: str, window: str = "hour", token: str | None = None
) -> dict[str, Any]:
    answer = runtime.management(
        USAGE, {"n": name, "s": "dev", "w": window}, token or management_token()
    )
    assert "errors" not in answer, answer
    return answer["data"]["serviceUsage"]


def wait_for(runtime: Runtime, name: str, requests: int) -> dict[str, Any]:
    """The service's usage once every process has flushed `requests` requests (each flushes
    once a second; the deadline only bounds a failure)."""
    deadline = time.monotonic() + 30
    while True:
        found = usage(runtime, name)
        if found["totals"]["requests"] >= requests or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def scrape(runtime: Runtime, token: str | None = METRICS_TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(runtime.url + "/metrics")  # noqa: S310 - loopback
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str, service: str) -> dict[str, float]:
    """`metric -> value` of the lines labelled with `service` (the `_total` and histogram
    `_count` lines)."""
    found = {}
    for line in text.splitlines():
        if line.startswith("#") or f'service="{service}"' not in line:
            continue
        name, value = line.split("{", 1)[0], float(line.rsplit(" ", 1)[1])
        if name.endswith(("_total", "_count")):
            found[name] = value
    return found


def service(runtime: Runtime, name: str) -> str:
    add(runtime, management_token(), name)
    deploy(runtime, management_token(), name, DATAMODEL)
    return f"/{name}/dev"


def test_counts_from_the_management_api_and_metrics_match_a_known_mix(pair):
    first, second = pair
    name, other = f"use{secrets.token_hex(3)}", f"use{secrets.token_hex(3)}"
    path, other_path = service(first, name), service(second, other)
    mix, other_mix = Mix(), Mix()

    # A burst through both processes: some run at once, some wait, the rest are refused.
    targets = [(first, path), (second, path)] * 6
    with ThreadPoolExecutor(len(targets)) as pool:
        answers = list(pool.map(lambda t: t[0].post(t[1], NOTES), targets))
    for answer in answers:
        mix.note(answer, NOTES, "Notes")
    assert mix.refused > 0 and mix.throttled > 0, "the burst should be both delayed and refused"
    time.sleep(2)  # the bucket fills again: the rest of the mix is admitted
    # Inlined values make one operation: its document with the literals stripped.
    inline = '{notes(where:{text:""}first:0){id}}'
    for i, runtime in enumerate([first, second, first]):
        query = {"query": f'{{ notes(where: {{text: "v{i}"}}, first: {i + 1}) {{ id }} }}'}
        mix.send(runtime, path, query, inline)
    create = {
        "query": "mutation Add($t: String) { createNote(data: {text: $t}) { id } }",
        "variables": {"t": "hello"},
    }
    mix.send(second, path, create, "Add")
    mix.send(first, path, {"query": "{ nope }"}, "{nope}")
    mix.send(second, path, [NOTES, NOTES], "Notes")
    # Same datamodel, another service: its requests are its own.
    for runtime in (first, second, second):
        other_mix.send(runtime, other_path, NOTES, "Notes")
    # Imports until the storage cap refuses one (imports are never throttled).
    for round_ in range(20):
        values = [
            {"_typeName": "Blob", "id": f"r{round_}b{i}", "text": secrets.token_urlsafe(1500)}
            for i in range(40)
        ]
        answer = mix.send(first, f"{path}/import", {"valueType": "nodes", "values": values}, None)
        if mix.storage_refused:
            break
    assert mix.storage_refused == 1, answer.body

    # Requests to services that do not exist are not counted (made-up names cannot grow the
    # tables); the same datamodel's other service is counted apart.
    for runtime in (first, second):
        assert (
            runtime.post(f"/nope{secrets.token_hex(3)}/dev", NOTES).body["errors"][0]["code"]
            == 3016
        )

    found = wait_for(second, name, mix.requests)
    totals = found["totals"]
    series = found["series"]
    assert totals["requests"] == mix.requests
    assert sum(series["operations"]) == mix.operations
    assert totals["errors"] == mix.errors
    assert totals["throttled"] == mix.throttled
    assert sum(series["delayMs"]) == mix.delay_ms
    assert totals["refused"] == mix.refused
    assert totals["storageRefused"] == mix.storage_refused
    operations = {op["name"] or op["document"]: op for op in found["operations"]}
    assert {k: v["count"] for k, v in operations.items()} == dict(mix.by_operation)
    assert {k: v["errors"] for k, v in operations.items()} == dict(mix.errors_by_operation)
    assert operations["Notes"]["document"] == "query Notes{notes{id}}"
    throttling = found["throttling"]
    assert throttling["lastHour"]["refused"] == mix.refused
    assert throttling["recentThrottledBy"] and all(v > 0 for v in throttling["recentThrottledBy"])
    assert found["storage"]["capBytes"] == round(0.3 * 1024 * 1024)
    assert found["storage"]["bytesNow"] > 0

    other_found = wait_for(first, other, other_mix.requests)
    assert other_found["totals"]["requests"] == other_mix.requests == 3
    assert [op["count"] for op in other_found["operations"]] == [3]

    # /metrics, through either process, says the same.
    for runtime in (first, second):
        status, text = scrape(runtime)
        assert status == 200
        figures = samples(text, f"{name}/dev")
        assert figures == {
            "refract_requests_total": mix.requests,
            "refract_operations_total": mix.operations,
            "refract_errors_total": mix.errors,
            "refract_throttled_requests_total": mix.throttled,
            "refract_throttle_delay_seconds_total": pytest.approx(mix.delay_ms / 1000),
            "refract_refused_requests_total": mix.refused,
            "refract_storage_refused_writes_total": mix.storage_refused,
            # Refused requests never ran: they have no latency.
            "refract_request_duration_seconds_count": mix.requests - mix.refused,
        }
        assert samples(text, f"{other}/dev")["refract_requests_total"] == 3
        assert "Notes" not in text  # operation names are never labels
        assert 'service="nope' not in text

    summary = first.management(
        SUMMARY,
        {"services": [{"name": name, "stage": "dev"}, {"name": other, "stage": "dev"}]},
        management_token(),
    )["data"]["usageSummary"]
    assert [s["requests24h"] for s in summary] == [mix.requests, 3]
    assert summary[0]["refusedLastHour"] == mix.refused
    assert summary[1]["throttledLastHour"] == other_mix.throttled


def test_a_service_scoped_token_reads_only_its_own_usage(pair):
    first, _ = pair
    name, other = f"own{secrets.token_hex(3)}", f"own{secrets.token_hex(3)}"
    service(first, name)
    service(first, other)
    scoped = management_token(grants=[{"target": f"{name}/dev", "action": "*"}])

    assert usage(first, name, token=scoped)["window"] == "hour"
    for query, variables in (
        (USAGE, {"n": other, "s": "dev", "w": "day"}),
        (SUMMARY, {"services": [{"name": name, "stage": "dev"}, {"name": other, "stage": "dev"}]}),
    ):
        answer = first.management(query, variables, scoped)
        assert answer["data"] is None or not any(answer["data"].values())
        assert answer["errors"][0]["code"] == 3015
    anonymous = first.management(USAGE, {"n": name, "s": "dev", "w": "day"})
    assert anonymous["errors"][0]["code"] == 3015


def test_bad_windows_and_unknown_services_get_clear_errors(pair):
    first, _ = pair
    name = f"bad{secrets.token_hex(3)}"
    service(first, name)
    answer = first.management(USAGE, {"n": name, "s": "dev", "w": "year"}, management_token())
    assert "Unknown window 'year'" in answer["errors"][0]["message"]
    answer = first.management(USAGE, {"n": "missing", "s": "dev", "w": "day"}, management_token())
    assert answer["errors"][0]["code"] == 4000  # Prisma's "project not found"
    week = usage(first, name, "week")
    assert week["bucketSeconds"] == 3600 and len(week["series"]["time"]) in (168, 169)


def test_metrics_need_the_configured_token(pair):
    first, _ = pair
    assert scrape(first, token=None)[0] == 401
    assert scrape(first, token="not-the-" + METRICS_TOKEN)[0] == 401
    status, text = scrape(first)
    assert status == 200 and "# TYPE refract_requests_total counter" in text


def test_without_metrics_in_the_config_get_metrics_is_a_service_endpoint(
    database: Database, tmp_path_factory: pytest.TempPathFactory
):
    config = {"databases": {"default": database.prisma_config()}}
    with run_runtime(config, tmp_path_factory.mktemp("nometrics")) as runtime:
        status, text = scrape(runtime, token=None)
    assert status != 401 and "refract_requests_total" not in text


def test_hourly_rows_and_minute_rows_add_up_to_the_same_insights(database: Database):
    """Older hours of a window come from the hourly rows, its ends from the minute rows: the
    same requests read through either give the same figures. Written by the flush itself."""
    from datetime import UTC, datetime, timedelta

    import psycopg
    from psycopg import sql

    from runtime.usage import report, store
    from runtime.usage.counter import UsageCounter

    schema = f"usage_{secrets.token_hex(3)}"
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    stamps = [now - timedelta(seconds=30)] + [
        hour - timedelta(hours=h) + timedelta(minutes=m)
        for h, m in ((1, 1), (1, 7), (3, 2), (5, 30), (5, 31))
    ]
    counter = UsageCounter(clock=lambda: stamps[0].timestamp())
    for index, stamp in enumerate(stamps):
        counter.clock = stamp.timestamp
        for _ in range(index + 1):
            counter.request("s", "svc$dev", latency=0.004 * (index + 1), payload=NOTES)
        counter.request("s", "svc$dev", latency=0.5, error=True, payload={"query": "{ x }"})
        counter.request("s", "twin$dev", latency=0.001, payload=NOTES)  # another service
    parameters = store.flush_parameters(counter.take(), {})
    assert parameters is not None

    async def flush() -> None:
        async with await psycopg.AsyncConnection.connect(
            database.conninfo(), autocommit=True
        ) as conn:
            await store.flush(conn, schema, parameters)

    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        store.ensure_tables(conn, schema)
        run_async(flush())
        totals = [
            conn.execute(
                sql.SQL('SELECT sum("count") FROM {}').format(sql.Identifier(schema, table))
            ).fetchone()[0]
            for table in ("UsageOperation", "UsageOperationHour")
        ]
        day = report.insights(conn, schema, "s", "svc$dev", now - timedelta(days=1), now)
        # The same rows read from minute rows only: a window ending where it starts has no
        # whole hour for the hourly rows, and the minute rows' end is open.
        minutes_only = report.insights(
            conn, schema, "s", "svc$dev", now - timedelta(days=1), now - timedelta(days=1)
        )
    assert totals == [sum(range(1, 7)) + 6 + 6] * 2  # every operation, in both tables
    figures = {op["name"] or op["document"]: (op["count"], op["errors"], op["p95"]) for op in day}
    assert figures == {
        "Notes": (21, 0, pytest.approx(report.quantile(0.95, _histogram(stamps)))),
        "{x}": (6, 6, 487.5),  # six answers in (250, 500] ms: 95% of the way up the bucket
    }
    assert [(op["count"], op["errors"]) for op in minutes_only] == [
        (op["count"], op["errors"]) for op in day
    ]


def _histogram(stamps: list) -> list[int]:
    from runtime.usage.counter import BUCKETS, latency_bucket

    histogram = [0] * BUCKETS
    for index in range(len(stamps)):
        histogram[latency_bucket(0.004 * (index + 1))] += index + 1
    return histogram


def test_a_deleted_service_leaves_no_usage_to_a_new_one_of_the_same_name(pair):
    first, second = pair
    name = f"del{secrets.token_hex(3)}"
    path = service(first, name)
    for runtime in (first, second):
        assert "errors" not in runtime.post(path, NOTES).body
    assert wait_for(first, name, 2)["totals"]["requests"] == 2

    deleted = first.management(
        "mutation($i: DeleteProjectInput!) { deleteProject(input: $i) { project { name } } }",
        {"i": {"name": name, "stage": "dev"}},
        management_token(),
    )
    assert "errors" not in deleted
    service(second, name)

    again = usage(first, name)
    assert again["totals"]["requests"] == 0 and again["operations"] == []
    # Prometheus' counters never go down: the running totals stay.
    assert samples(scrape(first)[1], f"{name}/dev")["refract_requests_total"] == 2
