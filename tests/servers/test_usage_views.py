"""The console's usage JSON: a service's graphs and insights, and the Services tab's summary, read
from a throttled sandbox region (our runtime as a real process, with Redis) through the
management API. Members read them, outsiders get 404, a server that is not ours or does not
answer is said so without an error.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest
from django.test import Client
from django.urls import reverse
from psycopg import sql

from servers import services
from servers.models import Server, Service
from tests.runtime.conftest import Runtime, run_runtime
from tests.servers.conftest import closed_port_origin, empty_region
from tests.servers.test_service_views import live_service

pytestmark = [pytest.mark.multiprocess]

RATE = 3  # per second, a burst of 3, one waiting: a burst of 8 is delayed and refused
NOTES = "query Notes { posts { id } }"


@pytest.fixture(scope="session")
def throttled_region(database, platform_keys, tmp_path_factory) -> Iterator[Runtime]:
    """A sandbox region with the throttle on (Redis), trusting the platform's key, on a
    database of its own (the `region` fixture's runtime serves the same workspace's services
    under the same names)."""
    own = replace(database, database=f"{database.database}_throttled")
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": own.prisma_config()},  # the runtime creates it
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": RATE, "perSeconds": 1, "maxWaiting": 1},
    }
    try:
        with run_runtime(config, tmp_path_factory.mktemp("throttled")) as running:
            yield running
    finally:
        with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(own.database)))


@pytest.fixture
def sandbox(settings, monkeypatch, throttled_region, platform_keys, team, owner) -> Server:
    configured = {"local": throttled_region.url, "gone": closed_port_origin()}
    settings.SANDBOX_REGIONS = configured
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
    monkeypatch.delenv("PLATFORM_PRIVATE_KEY_FILE", raising=False)
    empty_region(throttled_region.url, platform_keys.private_pem)
    server = services.provision_sandbox(owner.user, team, "local")
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY
    return server


def post(endpoint: str, query: str) -> tuple[dict, int]:
    request = urllib.request.Request(  # noqa: S310 - loopback
        endpoint,
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        delay = int(answer.headers["throttled-by"].removesuffix("ms"))
        return json.loads(answer.read()), delay


def burst(endpoint: str, count: int) -> tuple[int, int]:
    """`count` requests at once: (how many were delayed, how many refused)."""
    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda _: post(endpoint, NOTES), range(count)))
    refused = sum(1 for body, _ in answers if body.get("errors", [{}])[0].get("code") == 1004)
    return sum(1 for _, delay in answers if delay > 0), refused


def usage_url(service: Service, window: str | None = "hour") -> str:
    url = reverse("servers:service-usage", args=[service.server.workspace.slug, service.id])
    return url + (f"?window={window}" if window else "")


def wait_for_usage(client: Client, service: Service, requests: int) -> dict:
    """The usage JSON once the runtime has flushed `requests` requests (once a second)."""
    deadline = time.monotonic() + 30
    while True:
        found = client.get(usage_url(service)).json()
        if found.get("totals", {}).get("requests", 0) >= requests or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_member_reads_the_graphs_throttling_and_operations_of_a_service(
    sandbox, owner_client, member_client, outsider_client
):
    service = live_service(owner_client, sandbox, protect=None)
    twin = live_service(owner_client, sandbox, name="twin", protect=None)
    delayed, refused = burst(service.endpoint, 8)
    assert refused > 0, "the burst should reach the refusals"
    time.sleep(1.5)  # the bucket fills again
    for _ in range(2):
        post(twin.endpoint, NOTES)  # same datamodel, another service
    inline = post(service.endpoint, '{ posts(where: {title: "x"}) { id } }')[0]
    assert "errors" not in inline

    found = wait_for_usage(member_client, service, 9)

    assert found["available"] is True and found["sandbox"] is True
    assert found["totals"]["requests"] == 9
    assert found["totals"]["refused"] == refused
    assert found["totals"]["throttled"] == delayed
    throttling = found["throttling"]
    assert throttling["lastHour"] == {"throttled": delayed, "refused": refused, "storageRefused": 0}
    assert len(throttling["recentThrottledBy"]) == min(delayed, 10)
    operations = {op["name"] or op["document"]: op["count"] for op in found["operations"]}
    assert operations == {"Notes": 8 - refused, '{posts(where:{title:""}){id}}': 1}
    assert found["storage"]["capBytes"] == 100 * 1024 * 1024
    # The runtime's own limits, which the page explains a throttled service with.
    assert found["limits"] == {"requests": RATE, "windowSeconds": 1, "queue": 1}
    assert len(found["series"]["time"]) == 60 and sum(found["series"]["requests"]) == 9

    twin_found = wait_for_usage(member_client, twin, 2)
    assert twin_found["totals"]["requests"] == 2
    assert twin_found["throttling"]["lastHour"]["refused"] == 0

    day = member_client.get(usage_url(service, "day")).json()
    assert day["bucketSeconds"] == 900 and day["totals"]["requests"] == 9
    bad = member_client.get(usage_url(service, "year"))
    assert bad.status_code == 400 and bad.json()["field"] == "window"

    # The Services tab's summary: one call for the sandbox, every service in it.
    summary = member_client.get(reverse("servers:services-usage", args=["acme"])).json()
    assert summary["services"][str(service.id)]["requests24h"] == 9
    assert summary["services"][str(service.id)]["throttled"] is True
    assert summary["services"][str(twin.id)]["requests24h"] == 2
    assert summary["services"][str(twin.id)]["storageBytes"] > 0
    assert summary["services"][str(twin.id)]["nearCap"] is False

    # The overview lists the workspace's servers and services (the figures come from the same
    # summary, in the browser), a stranger gets 404.
    overview = member_client.get(reverse("accounts:workspace", args=["acme"])).content.decode()
    assert service.server.name in overview and "No servers yet" not in overview
    assert (
        f'data-service-id="{service.id}"' in overview and f'data-service-id="{twin.id}"' in overview
    )
    assert reverse("servers:services-usage", args=["acme"]) in overview

    # Strangers see nothing, not even that the service exists.
    assert outsider_client.get(reverse("accounts:workspace", args=["acme"])).status_code == 404
    assert outsider_client.get(usage_url(service)).status_code == 404
    assert outsider_client.get(reverse("servers:services-usage", args=["acme"])).status_code == 404
    html = member_client.get(reverse("servers:service", args=["acme", service.id])).content
    assert b'id="usage"' in html and usage_url(service, None).encode() in html
    assert b"vendor/uplot/uPlot.iife.min.js" in html


class NotOurs(BaseHTTPRequestHandler):
    """A real Prisma 1 server's management API, as far as usage goes: it has no such field."""

    def do_POST(self) -> None:
        asked = self.rfile.read(int(self.headers["Content-Length"]))
        field = "usageSummary" if b"usageSummary" in asked else "serviceUsage"
        body = json.dumps(
            {"errors": [{"message": f"Cannot query field '{field}' on type 'Query'."}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def real_prisma() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotOurs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def self_hosted(team, endpoint: str, name: str) -> Service:
    server = Server.objects.create(
        workspace=team,
        kind=Server.Kind.SELF_HOSTED,
        name=name,
        endpoint=endpoint,
        status=Server.Status.HEALTHY,
    )
    server.set_management_secret("a-secret-of-the-self-hosted-server")
    server.save()
    return Service.objects.create(server=server, name="shop", stage="prod", status="live")


def test_a_server_that_is_not_ours_or_does_not_answer_is_said_so(team, member_client, real_prisma):
    theirs = self_hosted(team, real_prisma, "their-prisma")
    down = self_hosted(team, closed_port_origin(), "down")

    found = member_client.get(usage_url(theirs)).json()
    assert found == {
        "available": False,
        "reason": "Usage is not available from this server: it does not measure usage (a "
        "Prisma server other than Refract's runtime).",
    }
    gone = member_client.get(usage_url(down)).json()
    assert gone["available"] is False and gone["reason"].startswith("The server did not answer")

    summary = member_client.get(reverse("servers:services-usage", args=["acme"]))
    assert summary.status_code == 200
    assert summary.json() == {"services": {str(theirs.id): None, str(down.id): None}}
    page = member_client.get(reverse("accounts:services", args=["acme"])).content
    assert b'data-testid="usage-requests"' in page


def test_the_usage_endpoints_answer_only_get(team, member_client, real_prisma):
    theirs = self_hosted(team, real_prisma, "their-prisma")
    assert member_client.post(usage_url(theirs)).status_code == 405
    assert member_client.post(reverse("servers:services-usage", args=["acme"])).status_code == 405
