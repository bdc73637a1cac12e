"""The periodic status check: every healthy or unreachable server is asked its serverInfo;
status changes (and only changes) go to the audit trail; one bad server never stops the rest."""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings as django_settings

from accounts.models import AuditAction, AuditEvent
from servers import services
from servers.models import Server
from servers.tasks import check_servers as check_servers_task
from tests.runtime import conftest as runtime_conftest
from tests.runtime.conftest import run_runtime
from tests.servers.conftest import closed_port_origin
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.multiprocess]


def changes(server: Server) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(
        action=AuditAction.SERVER_STATUS_CHANGED, detail__server=str(server.id)
    ).order_by("created_at")
    return [(e.detail["before"], e.detail["after"]) for e in events]


def self_hosted(team, name: str, endpoint: str, status: str) -> Server:
    server = Server(
        workspace=team,
        kind=Server.Kind.SELF_HOSTED,
        name=name,
        endpoint=endpoint,
        status=status,
        created_by=team.memberships.get(role="owner").user,
    )
    server.set_management_secret("a-secret")
    server.full_clean()
    server.save()
    return server


def test_a_runtime_that_stops_and_comes_back_is_audited_once_per_change(
    database, platform_keys, settings, team, owner, monkeypatch, tmp_path,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    port = runtime_conftest.free_port()
    monkeypatch.setattr(runtime_conftest, "free_port", lambda: port)  # the same port each time
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
    settings.SANDBOX_REGIONS = {"here": f"http://127.0.0.1:{port}"}
    with run_runtime(config, tmp_path):
        with django_capture_on_commit_callbacks(execute=False):
            server = services.provision_sandbox(owner.user, team, "here")
        assert services.run_provisioning(str(server.id)) == Server.Status.HEALTHY
        server.refresh_from_db()
        first_seen = server.last_seen_at

        assert services.check_servers() == {"healthy": 1}
        server.refresh_from_db()
        assert server.status == Server.Status.HEALTHY and server.version
        assert server.last_seen_at > first_seen

    # The runtime is gone: nothing listens on its port any more.
    assert services.check_servers() == {"lost": 1}
    server.refresh_from_db()
    assert server.status == Server.Status.UNREACHABLE
    assert "cannot connect" in server.status_reason and str(port) in server.status_reason
    seen_while_up = server.last_seen_at
    assert services.check_servers() == {"unreachable": 1}  # still down: no second record

    with run_runtime(config, tmp_path):
        assert services.check_servers() == {"recovered": 1}
        assert services.check_servers() == {"healthy": 1}
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY and server.status_reason == ""
    assert server.last_seen_at > seen_while_up
    assert changes(server) == [
        ("provisioning", "healthy"),
        ("healthy", "unreachable"),
        ("unreachable", "healthy"),
    ]
    change = AuditEvent.objects.filter(action=AuditAction.SERVER_STATUS_CHANGED).latest(
        "created_at"
    )
    assert change.workspace == team and change.actor is None


def test_one_dead_or_hung_server_does_not_stop_the_others(region, team, settings, silent_server):
    settings.SERVER_HEALTH_TIMEOUT = 1
    up = self_hosted(team, "up", region.url, Server.Status.UNREACHABLE)
    dead = self_hosted(team, "dead", closed_port_origin(), Server.Status.HEALTHY)
    hung = self_hosted(team, "hung", silent_server, Server.Status.HEALTHY)
    also_up = self_hosted(team, "also-up", region.url, Server.Status.HEALTHY)
    # Rows the check leaves alone: a provisioning run owns its row, a failed server waits for
    # its owner, a deleting one is on its way out.
    untouched = [
        self_hosted(team, "new", closed_port_origin(), Server.Status.PROVISIONING),
        self_hosted(team, "broken", region.url, Server.Status.FAILED),
        self_hosted(team, "leaving", closed_port_origin(), Server.Status.DELETING),
    ]

    outcomes = services.check_servers()

    assert outcomes == {"recovered": 1, "lost": 2, "healthy": 1}
    for server in (up, dead, hung, also_up, *untouched):
        server.refresh_from_db()
    assert (up.status, also_up.status) == (Server.Status.HEALTHY, Server.Status.HEALTHY)
    assert up.version and also_up.version and up.last_seen_at
    assert dead.status == Server.Status.UNREACHABLE and "cannot connect" in dead.status_reason
    assert hung.status == Server.Status.UNREACHABLE
    assert "did not answer within 1 s" in hung.status_reason
    assert [s.status for s in untouched] == ["provisioning", "failed", "deleting"]
    assert all(changes(s) == [] for s in untouched)
    assert changes(up) == [("unreachable", "healthy")]
    assert changes(dead) == changes(hung) == [("healthy", "unreachable")]
    assert changes(also_up) == []


def test_a_server_deleted_while_checked_is_left_deleting(region, team):
    server = self_hosted(team, "going", closed_port_origin(), Server.Status.HEALTHY)
    version, reason = services.probe(server)
    assert version is None and "cannot connect" in reason
    Server.objects.filter(id=server.id).update(status=Server.Status.DELETING)  # meanwhile

    assert services.record_health(server, version, reason) == "changed meanwhile"
    server.refresh_from_db()
    assert server.status == Server.Status.DELETING and changes(server) == []


def test_a_stopped_runtime_process_times_out(database, platform_keys, team, settings, tmp_path):
    """A runtime frozen with SIGSTOP accepts connections and never answers."""
    settings.SERVER_HEALTH_TIMEOUT = 1
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path) as runtime:
        server = self_hosted(team, "frozen", runtime.url, Server.Status.HEALTHY)
        os.kill(runtime.process.pid, signal.SIGSTOP)
        try:
            assert services.check_servers() == {"lost": 1}
        finally:
            os.kill(runtime.process.pid, signal.SIGCONT)
        assert services.check_servers() == {"recovered": 1}
    server.refresh_from_db()
    assert changes(server) == [("healthy", "unreachable"), ("unreachable", "healthy")]


def test_beat_runs_the_check_every_minute():
    entry = django_settings.CELERY_BEAT_SCHEDULE["check-servers"]
    assert entry["task"] == check_servers_task.name == "servers.check_status"
    assert entry["schedule"].total_seconds() == 60
    assert entry["options"]["expires"] < 60  # checks do not pile up while workers are away


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_check(region, team):
    server = self_hosted(team, "worker", region.url, Server.Status.UNREACHABLE)
    with celery_worker():
        check_servers_task.delay()
        assert wait_until(lambda: Server.objects.get(id=server.id).status == "healthy")
    assert changes(server) == [("unreachable", "healthy")]
