"""Deploys when things go wrong: a worker SIGKILLed half-way, a runtime that stops, deploys
queued at once, a bad datamodel, a deploy that would lose data, a cancelled deploy, and deploys
made behind the console's back.

Everything of ours is real: Celery worker processes on the Redis broker, the runtime as a
process, PostgreSQL. The only stand-in is the outside world between the worker and its server: a
loopback HTTP proxy (`ServerLink`) that forwards every call to the runtime, counts them, and can
hold one kind of call until the test lets it through, so "in the middle of a deploy" is a moment
the test chooses rather than a race it hopes to win.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from accounts import services as accounts_services
from accounts.models import Workspace
from cloud.celery import app
from servers import deploys, runs, services, tasks, tokens
from servers.management_api import ManagementClient
from servers.models import Deploy, Server, Service
from tests.conftest import Persona
from tests.runtime.conftest import Runtime, run_runtime
from tests.support.worker import ROOT, celery_worker, wait_until
from tests.support.worker import test_database_url as worker_database_url  # not a test

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

BLOG = """
type Post {
  id: ID! @id
  title: String!
  published: Boolean! @default(value: false)
}

type Tag {
  id: ID! @id
  name: String! @unique
}
"""
# One more optional field: a new revision that loses nothing.
BLOG_WITH_SUMMARY = BLOG.replace("title: String!", "title: String!\n  summary: String")
# Tag removed: the server warns that its rows would be lost.
BLOG_WITHOUT_TAGS = BLOG.split("type Tag")[0]
# Two errors the server reports field by field.
BLOG_WITH_ERRORS = BLOG.replace("title: String!", "title: String!\n  author: Person\n  title: Int")

OPERATION = re.compile(
    r"\b(deploy|migrationStatus|addProject|listMigrations|listProjects|serverInfo"
    r"|deleteProject|project)\b"
)
HOLD_TIMEOUT = 120  # a held call is let through after this anyway: a failing test never hangs


# --- the link between the worker and its server -----------------------------------------------


@dataclass
class Hold:
    operation: str
    project: str
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, operation: str, variables: dict[str, Any]) -> bool:
        named = variables.get("name") or (variables.get("input") or {}).get("name")
        return operation == self.operation and named == self.project


@dataclass
class Call:
    operation: str
    variables: dict[str, Any]


class ServerLink:
    """A loopback HTTP proxy in front of a runtime: forwards every request unchanged, records
    the management calls, holds the ones asked for, and answers 502 (as a load balancer does)
    when the runtime behind it is gone."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.calls: list[Call] = []
        self.holds: list[Hold] = []
        self.lock = threading.Lock()
        link = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                link.forward(self)

            def do_GET(self) -> None:
                link.forward(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self, operation: str, project: str) -> Hold:
        hold = Hold(operation, project)
        with self.lock:
            self.holds.append(hold)
        return hold

    def count(self, operation: str, project: str) -> int:
        with self.lock:
            return sum(
                1 for c in self.calls if Hold(operation, project).matches(c.operation, c.variables)
            )

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if request.path == "/management":
            document = json.loads(body or b"{}")
            found = OPERATION.search(document.get("query", ""))
            call = Call(found.group(1) if found else "", document.get("variables") or {})
            with self.lock:
                self.calls.append(call)
                holds = [h for h in self.holds if h.matches(call.operation, call.variables)]
            for hold in holds:
                hold.arrived.set()
                hold.released.wait(HOLD_TIMEOUT)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        try:
            upstream = http.client.HTTPConnection(
                self.upstream.hostname, self.upstream.port, timeout=60
            )
            upstream.request(request.command, request.path, body or None, headers)
            answer = upstream.getresponse()
            status, content_type, payload = (
                answer.status,
                answer.getheader("Content-Type", ""),
                answer.read(),
            )
            upstream.close()
        except OSError:
            status, content_type, payload = 502, "text/html", b"<h1>502 Bad Gateway</h1>"
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(payload)))
            request.end_headers()
            request.wfile.write(payload)
        except OSError:
            pass  # the worker that asked was killed meanwhile

    def close(self) -> None:
        with self.lock:
            for hold in self.holds:
                hold.released.set()
        self.server.shutdown()
        self.server.server_close()


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def fast_deploys(settings, monkeypatch) -> None:
    """Short delays for the worker processes (read from their environment) and for this one."""
    values = {
        "DEPLOY_POLL_SECONDS": "0.05",
        "DEPLOY_RETRY_DELAYS": "0.1,0.2,0.3",
        "DEPLOY_STALE_SECONDS": "1",
        "SERVER_MANAGEMENT_TIMEOUT": "30",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings.DEPLOY_POLL_SECONDS = 0.05
    settings.DEPLOY_RETRY_DELAYS = [0.1, 0.2, 0.3]
    settings.DEPLOY_STALE_SECONDS = 1


@pytest.fixture
def link(region: Runtime) -> Iterator[ServerLink]:
    running = ServerLink(region.url)
    yield running
    running.close()


@pytest.fixture
def lone_team(owner: Persona) -> Workspace:
    """A workspace of its own: the session's region keeps the projects of earlier tests, and
    they all belong to `acme`."""
    return accounts_services.create_workspace(
        user=owner.user, name="Lone", slug=f"lone-{secrets.token_hex(4)}"
    )


def provision(owner: Persona, team: Workspace, origin: str, settings, monkeypatch) -> Server:
    """A healthy sandbox whose region is `origin`, provisioned through the running worker."""
    settings.SANDBOX_REGIONS = {"local": origin}
    monkeypatch.setenv("SANDBOX_REGIONS", f"local={origin}")
    server = services.provision_sandbox(owner.user, team, "local")
    assert wait_until(lambda: Server.objects.get(id=server.id).status != Server.Status.PROVISIONING)
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY, server.status_reason
    return server


def final(deploy: Deploy, timeout: float = 60) -> Deploy:
    """The deploy once it ended (a failed wait fails the test, never hangs it)."""
    assert wait_until(
        lambda: Deploy.objects.get(id=deploy.id).status in Deploy.FINAL, timeout=timeout
    ), f"deploy still {Deploy.objects.get(id=deploy.id).status}"
    return Deploy.objects.get(id=deploy.id)


def truth(runtime: Runtime, service: Service, what: str = "migrationStatus") -> Any:
    """What the server itself says of the service (its migrationStatus, or the datamodel it
    serves), asked straight, not through the link."""
    client = ManagementClient(
        runtime.url, token=tokens.cluster_token(service.server, service.name, service.stage)
    )
    if what == "datamodel":
        return client.call(
            "query($n: String!, $s: String!) { project(name: $n, stage: $s) { datamodel } }",
            {"n": service.project, "s": service.stage},
        )["project"]["datamodel"]
    return client.migration_status(service.project, service.stage)


def query(service: Service, document: str) -> dict[str, Any]:
    """A query to the service's own API, with a service token, as a client app sends it."""
    parts = urlsplit(service.endpoint)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(
        "POST",
        parts.path,
        json.dumps({"query": document}),
        {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {deploys.service_token(service)}",
        },
    )
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer


def deployed(owner: Persona, server: Server, name: str, datamodel: str = BLOG) -> Service:
    created = deploys.create_service(owner.user, server, name, "dev", datamodel)
    done = final(created.deploy)
    assert done.status == Deploy.Status.SUCCEEDED, done.reason
    return Service.objects.select_related("server__workspace").get(id=created.service.id)


# --- a worker killed half-way -----------------------------------------------------------------


def test_a_worker_killed_mid_deploy_leaves_nothing_running(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    """The worker is SIGKILLed while it waits for the server's migrationStatus (the server has
    applied the migration by then); the reaper queues the deploy again, a new worker finishes
    it, and the history says what the server says."""
    with celery_worker() as worker:
        server = provision(owner, team, link.url, settings, monkeypatch)
        held = link.hold("migrationStatus", server.project_name("killed"))
        created = deploys.create_service(owner.user, server, "killed", "dev", BLOG)
        assert held.arrived.wait(60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    held.released.set()
    stuck = Deploy.objects.get(id=created.deploy.id)
    assert stuck.status == Deploy.Status.RUNNING and stuck.attempts == 1

    with celery_worker():
        # Celery beat's job here: the reaper, every moment, until the deploy ended.
        def reaped() -> bool:
            tasks.reap_deploys.delay()
            return Deploy.objects.get(id=created.deploy.id).status in Deploy.FINAL

        assert wait_until(reaped, timeout=60, interval=0.5)

    deploy = Deploy.objects.get(id=created.deploy.id)
    service = Service.objects.get(id=created.service.id)
    server_says = truth(region, service)
    assert deploy.status == Deploy.Status.SUCCEEDED, deploy.reason
    assert deploy.attempts == 2
    assert server_says["status"] == "SUCCESS"
    assert deploy.revision == service.revision == server_says["revision"]
    assert deploy.steps, "the steps the server applied stay in the history"
    assert service.status == Service.Status.LIVE and service.datamodel == BLOG
    assert not Deploy.objects.filter(status=Deploy.Status.RUNNING).exists()


def killed_while_polling(
    owner: Persona, team: Workspace, link: ServerLink, name: str, settings, monkeypatch
) -> Deploy:
    """A service's first deploy whose worker is SIGKILLed after the server took the migration,
    while it asks the server's migrationStatus; the link lets the call through afterwards."""
    with celery_worker() as worker:
        server = provision(owner, team, link.url, settings, monkeypatch)
        held = link.hold("migrationStatus", server.project_name(name))
        created = deploys.create_service(owner.user, server, name, "dev", BLOG)
        assert held.arrived.wait(60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    held.released.set()
    deploy = Deploy.objects.select_related("service__server__workspace").get(id=created.deploy.id)
    assert deploy.status == Deploy.Status.RUNNING and deploy.revision is not None
    return deploy


def test_reconcile_does_not_record_twice_a_deploy_the_reaper_queued_again(
    regions, fast_deploys, settings, monkeypatch, link, region, lone_team, owner
):
    """Between the reaper queueing a dead worker's deploy again and a worker taking it, the
    periodic reconcile sees the server's migration: it is that deploy's, not a CLI deploy."""
    deploy = killed_while_polling(owner, lone_team, link, "requeued", settings, monkeypatch)
    later = timezone.now() + timedelta(seconds=settings.DEPLOY_STALE_SECONDS + 1)
    runs.reap_deploys(now=later)  # its message goes to the dead worker's queue
    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.QUEUED

    assert runs.reconcile([str(deploy.service.server_id)])["deploys"] == 0

    with celery_worker():

        def reaped() -> bool:
            tasks.reap_deploys.delay()  # queues it again on this worker's queue
            return Deploy.objects.get(id=deploy.id).status in Deploy.FINAL

        assert wait_until(reaped, timeout=60, interval=0.5)
    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.SUCCEEDED, deploy.reason
    assert deploy.revision == truth(region, deploy.service)["revision"]
    assert list(deploy.service.deploys.values_list("source", flat=True)) == ["console"]


def test_a_stuck_deploy_cancelled_by_its_user_takes_the_servers_outcome(
    regions, fast_deploys, settings, monkeypatch, link, region, lone_team, owner
):
    """The console lets a user cancel a deploy that stopped showing life, and promises that
    the server's history has the last word: reconcile gives it the server's outcome."""
    deploy = killed_while_polling(owner, lone_team, link, "cancelled", settings, monkeypatch)
    assert wait_until(lambda: deploys.is_stuck(Deploy.objects.get(id=deploy.id)))
    cancelled = deploys.cancel_deploy(owner.user, deploy)
    assert cancelled.status == Deploy.Status.CANCELLED and "stopped making progress" in (
        cancelled.reason
    )

    assert runs.reconcile([str(deploy.service.server_id)])["deploys"] == 1  # corrected

    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.SUCCEEDED
    assert deploy.revision == truth(region, deploy.service)["revision"]
    assert deploy.service.deploys.count() == 1


def test_the_reaper_fails_a_deploy_whose_workers_keep_dying(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    """After DEPLOY_ATTEMPTS claims without an end, the reaper fails it with the reason."""
    monkeypatch.setenv("DEPLOY_ATTEMPTS", "1")
    settings.DEPLOY_ATTEMPTS = 1
    with celery_worker() as worker:
        server = provision(owner, team, link.url, settings, monkeypatch)
        held = link.hold("deploy", server.project_name("doomed"))
        created = deploys.create_service(owner.user, server, "doomed", "dev", BLOG)
        assert held.arrived.wait(60)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    with celery_worker():

        def reaped() -> bool:
            tasks.reap_deploys.delay()
            return Deploy.objects.get(id=created.deploy.id).status in Deploy.FINAL

        assert wait_until(reaped, timeout=60, interval=0.5)
    held.released.set()

    deploy = Deploy.objects.get(id=created.deploy.id)
    assert deploy.status == Deploy.Status.FAILED
    assert "worker went away" in deploy.reason
    assert deploy.finished_at is not None and deploy.claim_id is None


# --- a server that stops ----------------------------------------------------------------------


def test_a_runtime_stopped_mid_deploy_is_retried_then_fails_with_the_reason(
    regions, fast_deploys, settings, monkeypatch, region, database, platform_keys, team, owner,
    tmp_path,
):  # fmt: skip
    """The runtime behind the server's endpoint stops while the worker sends the deploy: the
    worker tries again after each DEPLOY_RETRY_DELAYS, then fails the deploy naming the server;
    nothing stays running, and the server (started again) has nothing of it."""
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path) as doomed, celery_worker():
        link = ServerLink(doomed.url)
        try:
            server = provision(owner, team, link.url, settings, monkeypatch)
            service = deployed(owner, server, "stopped")
            before = truth(doomed, service)
            held = link.hold("deploy", service.project)
            deploy = deploys.request_deploy(owner.user, service, BLOG_WITH_SUMMARY)
            assert held.arrived.wait(60)
            doomed.process.terminate()
            doomed.process.wait(timeout=30)
            held.released.set()
            deploy = final(deploy)
        finally:
            link.close()

    assert deploy.status == Deploy.Status.FAILED
    tries = len(settings.DEPLOY_RETRY_DELAYS) + 1
    assert link.count("deploy", service.project) == 1 + tries  # the first deploy, then ours
    assert deploy.reason.startswith(f"the server {server.name} cannot be reached: deploy: ")
    assert link.url in deploy.reason and f"tried {tries} times" in deploy.reason
    assert deploy.attempts == 1 and deploy.finished_at is not None
    assert not Deploy.objects.filter(status=Deploy.Status.RUNNING).exists()
    # The same database, served by the session's region: the migration never happened.
    assert truth(region, service)["revision"] == before["revision"]
    service.refresh_from_db()
    assert service.revision == before["revision"] and service.datamodel == BLOG


def test_a_deploy_whose_outcome_was_lost_is_settled_from_the_servers_history(
    regions, fast_deploys, settings, monkeypatch, region, database, platform_keys, lone_team,
    owner, tmp_path,
):  # fmt: skip
    """The runtime stops after it applied the migration, while the worker asks how it went:
    the deploy fails, since the worker cannot know. Once the server is back, the periodic
    reconcile reads the server's history, and the deploy says what the server did."""
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path) as doomed, celery_worker():
        link = ServerLink(doomed.url)
        try:
            server = provision(owner, lone_team, link.url, settings, monkeypatch)
            service = deployed(owner, server, "unsure")
            held = link.hold("migrationStatus", service.project)
            deploy = deploys.request_deploy(owner.user, service, BLOG_WITH_SUMMARY)
            assert held.arrived.wait(60)
            doomed.process.terminate()
            doomed.process.wait(timeout=30)
            held.released.set()
            deploy = final(deploy)
            assert deploy.status == Deploy.Status.FAILED
            assert "cannot be reached: migrationStatus" in deploy.reason

            link.upstream = urlsplit(region.url)  # the server is back (the same database)
            outcome = runs.reconcile([str(server.id)])
        finally:
            link.close()

    server_says = truth(region, service)
    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.SUCCEEDED, deploy.reason
    assert deploy.revision == server_says["revision"] and deploy.migration_status == "SUCCESS"
    assert "cannot be reached" in deploy.reason and "corrected" in deploy.reason
    assert outcome == {"services": 0, "deploys": 1, "errors": 0}  # corrected, not recorded
    assert service.deploys.count() == 2
    service.refresh_from_db()
    assert service.revision == deploy.revision and service.datamodel == BLOG_WITH_SUMMARY


# --- one at a time per service ----------------------------------------------------------------


@contextmanager
def another_worker() -> Iterator[subprocess.Popen]:
    """A second worker process on the queue of the running `celery_worker()`."""
    queue = app.conf.task_default_queue
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "CELERY_QUEUE": queue}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "cloud", "worker", "--pool", "solo",
         "--queues", queue, "--loglevel", "WARNING", "--without-heartbeat",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_deploys_of_one_service_run_in_turn_and_others_do_not_wait(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    """Two workers, three deploys queued at once. The service's first deploy is held at the
    server; its second waits its turn (the idle worker does not start it); the deploy to
    another service goes through meanwhile. Then both of the first service's deploys end, in order,
    with consecutive revisions."""
    with celery_worker(), another_worker():
        server = provision(owner, team, link.url, settings, monkeypatch)
        busy = deployed(owner, server, "busy")
        other = deployed(owner, server, "other")
        held = link.hold("migrationStatus", busy.project)
        first = deploys.request_deploy(owner.user, busy, BLOG_WITH_SUMMARY)
        then = deploys.request_deploy(owner.user, busy, BLOG)
        elsewhere = deploys.request_deploy(owner.user, other, BLOG_WITH_SUMMARY)
        assert held.arrived.wait(60)

        elsewhere = final(elsewhere)
        assert elsewhere.status == Deploy.Status.SUCCEEDED, elsewhere.reason
        assert Deploy.objects.get(id=first.id).status == Deploy.Status.RUNNING
        assert Deploy.objects.get(id=then.id).status == Deploy.Status.QUEUED
        assert link.count("deploy", busy.project) == 2  # the service's creation, then first

        held.released.set()
        first, then = final(first), final(then)

    assert first.status == then.status == Deploy.Status.SUCCEEDED, (first.reason, then.reason)
    assert then.started_at >= first.finished_at
    assert then.revision == first.revision + 1
    busy.refresh_from_db()
    assert busy.revision == then.revision == truth(region, busy)["revision"]
    assert busy.datamodel == BLOG


# --- what the server refuses ------------------------------------------------------------------


def test_a_datamodel_error_fails_at_once_and_changes_nothing(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    with celery_worker():
        server = provision(owner, team, link.url, settings, monkeypatch)
        service = deployed(owner, server, "strict")
        created = query(service, 'mutation { createPost(data: {title: "kept"}) { id } }')
        assert "errors" not in created, created
        before = truth(region, service)

        deploy = final(deploys.request_deploy(owner.user, service, BLOG_WITH_ERRORS))

    assert deploy.status == Deploy.Status.FAILED
    assert deploy.attempts == 1 and link.count("deploy", service.project) == 2  # no retries
    assert deploy.reason == "the datamodel has 2 errors"
    assert [(e["type"], e["field"]) for e in deploy.errors] == [
        ("Post", "author"),
        ("Post", "title"),
    ]
    assert "Person" in deploy.errors[0]["description"]
    assert truth(region, service)["revision"] == before["revision"]
    assert query(service, "{ posts { title } }") == {"data": {"posts": [{"title": "kept"}]}}
    service.refresh_from_db()
    assert service.datamodel == BLOG and service.revision == before["revision"]


def test_a_datamodel_that_does_not_parse_fails_at_once_with_the_servers_message(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    with celery_worker():
        server = provision(owner, team, link.url, settings, monkeypatch)
        service = deployed(owner, server, "garbled")
        before = truth(region, service)

        deploy = final(deploys.request_deploy(owner.user, service, "type Post { id: ID! @id"))

    assert deploy.status == Deploy.Status.FAILED
    assert deploy.attempts == 1 and link.count("deploy", service.project) == 2
    assert "Syntax Error" in deploy.reason
    assert [(e["type"], e["field"]) for e in deploy.errors] == [("Global", None)]
    assert "Syntax Error" in deploy.errors[0]["description"]
    assert truth(region, service)["revision"] == before["revision"]


def test_a_deploy_that_would_lose_data_fails_until_forced(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    with celery_worker():
        server = provision(owner, team, link.url, settings, monkeypatch)
        service = deployed(owner, server, "careful")
        made = query(service, 'mutation { createTag(data: {name: "keep me"}) { id } }')
        assert "errors" not in made, made
        before = truth(region, service)

        refused = final(deploys.request_deploy(owner.user, service, BLOG_WITHOUT_TAGS))
        assert refused.status == Deploy.Status.FAILED
        assert "lose data" in refused.reason
        assert refused.warnings and all(w["type"] == "Tag" for w in refused.warnings)
        assert refused.revision is None
        assert truth(region, service)["revision"] == before["revision"]
        assert query(service, "{ tags { name } }") == {"data": {"tags": [{"name": "keep me"}]}}

        forced = final(deploys.redeploy(owner.user, refused, force=True))

    assert forced.status == Deploy.Status.SUCCEEDED, forced.reason
    assert forced.force and forced.redeploy_of_id == refused.id
    assert forced.revision == before["revision"] + 1 == truth(region, service)["revision"]
    assert "errors" in query(service, "{ tags { name } }")  # the model is gone
    service.refresh_from_db()
    assert service.datamodel == BLOG_WITHOUT_TAGS and service.revision == forced.revision


# --- cancelling -------------------------------------------------------------------------------


def test_a_cancelled_deploy_is_never_run(
    regions, fast_deploys, settings, monkeypatch, link, region, team, owner
):
    """A deploy queued behind a running one is cancelled; its task message still reaches the
    worker later (and the reaper runs), yet the server never sees its datamodel."""
    marked = BLOG.replace("title: String!", "title: String!\n  cancelled: String")
    with celery_worker():
        server = provision(owner, team, link.url, settings, monkeypatch)
        service = deployed(owner, server, "cancels")
        held = link.hold("migrationStatus", service.project)
        running = deploys.request_deploy(owner.user, service, BLOG_WITH_SUMMARY)
        assert held.arrived.wait(60)
        doomed = deploys.request_deploy(owner.user, service, marked)
        cancelled = deploys.cancel_deploy(owner.user, doomed)
        assert cancelled.status == Deploy.Status.CANCELLED
        held.released.set()
        assert final(running).status == Deploy.Status.SUCCEEDED
        tasks.reap_deploys.delay()  # after the cancelled deploy's own message, in queue order
        later = final(deploys.request_deploy(owner.user, service, BLOG))

    doomed.refresh_from_db()
    assert doomed.status == Deploy.Status.CANCELLED
    assert doomed.started_at is None and doomed.attempts == 0 and doomed.revision is None
    assert later.status == Deploy.Status.SUCCEEDED
    assert later.revision == Deploy.objects.get(id=running.id).revision + 1
    with link.lock:
        sent = [c.variables.get("types") for c in link.calls if c.operation == "deploy"]
    assert marked not in sent
    assert "cancelled" not in truth(region, service, "datamodel")


# --- reconciling ------------------------------------------------------------------------------


def test_a_deploy_made_straight_against_the_server_appears_in_the_history(
    regions, fast_deploys, settings, monkeypatch, link, region, lone_team, owner
):
    """As the Prisma CLI does: a cluster token and the management API, no console. The
    periodic reconcile records it with source cli and the server's revision; a service the
    console never heard of is found too."""
    with celery_worker():
        server = provision(owner, lone_team, link.url, settings, monkeypatch)
        service = deployed(owner, server, "behind")

    cli = ManagementClient(region.url, token=tokens.cluster_token(server, "behind", "dev"))
    answer = cli.deploy(service.project, "dev", BLOG_WITH_SUMMARY, secrets=[service.secret_value])
    assert not answer["errors"] and answer["migration"]
    stranger = ManagementClient(region.url, token=tokens.cluster_token(server, "unknown", "dev"))
    stranger.add_project(server.project_name("unknown"), "dev")
    stranger.deploy(server.project_name("unknown"), "dev", BLOG)

    outcome = runs.reconcile([str(server.id)])

    assert outcome == {"services": 1, "deploys": 2, "errors": 0}
    server_says = truth(region, service)
    recorded = Deploy.objects.get(service=service, source=Deploy.Source.CLI)
    assert recorded.status == Deploy.Status.SUCCEEDED
    assert recorded.revision == server_says["revision"] == answer["migration"]["revision"]
    assert recorded.datamodel == BLOG_WITH_SUMMARY
    service.refresh_from_db()
    assert service.revision == server_says["revision"]
    assert service.datamodel == BLOG_WITH_SUMMARY
    found = Service.objects.get(server=server, name="unknown")
    assert found.origin == Service.Origin.SERVER and found.status == Service.Status.LIVE
    assert list(found.deploys.values_list("source", "revision")) == [(Deploy.Source.CLI, 2)]
    # Idempotent: the next periodic run records nothing twice.
    assert runs.reconcile([str(server.id)]) == {"services": 0, "deploys": 0, "errors": 0}


def test_reconcile_runs_in_the_worker(
    regions, fast_deploys, settings, monkeypatch, link, region, lone_team, owner
):
    with celery_worker():
        server = provision(owner, lone_team, link.url, settings, monkeypatch)
        service = deployed(owner, server, "beat")
        cli = ManagementClient(region.url, token=tokens.cluster_token(server, "beat", "dev"))
        cli.deploy(service.project, "dev", BLOG_WITH_SUMMARY, secrets=[service.secret_value])
        tasks.reconcile.delay()
        assert wait_until(lambda: service.deploys.filter(source=Deploy.Source.CLI).exists())

    recorded = service.deploys.get(source=Deploy.Source.CLI)
    assert recorded.revision == truth(region, service)["revision"]
