"""Provisioning a sandbox: the row first, the check in a worker, a final state always."""

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent
from servers import services
from servers.models import Server
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.multiprocess]


def provision(owner, team, region: str, capture) -> Server:
    with capture(execute=False) as queued:
        server = services.provision_sandbox(owner.user, team, region)
    assert len(queued) == 1  # the check is queued on commit, not run in the request
    return server


def test_the_check_marks_a_reachable_region_healthy(
    regions, team, owner, django_capture_on_commit_callbacks
):
    server = provision(owner, team, "local", django_capture_on_commit_callbacks)

    assert services.run_provisioning(str(server.id)) == Server.Status.HEALTHY
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY and server.status_reason == ""
    assert server.version and server.last_seen_at is not None
    assert server.heartbeat_at is None and server.attempts == 1
    change = AuditEvent.objects.get(action=AuditAction.SERVER_STATUS_CHANGED)
    assert (change.detail["before"], change.detail["after"]) == ("provisioning", "healthy")
    assert change.workspace == team
    # Idempotent: a second delivery of the same task changes nothing.
    assert services.run_provisioning(str(server.id)) == "skipped"
    assert AuditEvent.objects.filter(action=AuditAction.SERVER_STATUS_CHANGED).count() == 1


def test_an_unreachable_region_ends_failed_with_the_reason(
    regions, team, owner, django_capture_on_commit_callbacks
):
    server = provision(owner, team, "gone", django_capture_on_commit_callbacks)

    assert services.run_provisioning(str(server.id)) == Server.Status.FAILED
    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert "cannot connect" in server.status_reason and regions["gone"] in server.status_reason


def test_a_failed_sandbox_can_be_provisioned_again(
    regions, settings, team, owner, django_capture_on_commit_callbacks
):
    server = provision(owner, team, "gone", django_capture_on_commit_callbacks)
    services.run_provisioning(str(server.id))
    settings.SANDBOX_REGIONS = {**regions, "gone": regions["local"]}  # the operator fixed it
    Server.objects.filter(id=server.id).update(endpoint=regions["local"])

    again = provision(owner, team, "gone", django_capture_on_commit_callbacks)

    assert again.id == server.id and again.status == Server.Status.PROVISIONING
    assert services.run_provisioning(str(server.id)) == Server.Status.HEALTHY


def test_a_run_held_by_a_live_worker_is_not_taken_twice(
    regions, team, owner, django_capture_on_commit_callbacks
):
    server = provision(owner, team, "local", django_capture_on_commit_callbacks)
    assert services.claim(str(server.id)) is not None

    assert services.run_provisioning(str(server.id)) == "skipped"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.reap_stale() == 0  # its heartbeat is fresh
    assert queued == []


def test_the_reaper_gives_up_after_the_last_attempt(
    regions, settings, team, owner, django_capture_on_commit_callbacks
):
    server = provision(owner, team, "local", django_capture_on_commit_callbacks)
    later = timezone.now()
    for _ in range(settings.SERVER_PROVISION_ATTEMPTS):
        later += timedelta(seconds=settings.SERVER_STALE_SECONDS + 1)
        assert services.claim(str(server.id), now=later) is not None  # a worker that then dies

    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.reap_stale(now=later + timedelta(seconds=settings.SERVER_STALE_SECONDS + 1))

    server.refresh_from_db()
    assert queued == []
    assert server.status == Server.Status.FAILED
    assert "worker went away" in server.status_reason


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_provisions_a_sandbox(regions, team, owner):
    with celery_worker():
        server = services.provision_sandbox(owner.user, team, "local")
        assert wait_until(
            lambda: Server.objects.get(id=server.id).status != Server.Status.PROVISIONING
        )

    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY, server.status_reason
    assert server.version


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_fails_an_unreachable_region_with_the_reason(regions, team, owner):
    with celery_worker():
        server = services.provision_sandbox(owner.user, team, "gone")
        assert wait_until(
            lambda: Server.objects.get(id=server.id).status != Server.Status.PROVISIONING
        )

    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert "cannot connect" in server.status_reason


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_check_leaves_nothing_stuck(
    regions, settings, monkeypatch, silent_server, team, owner
):
    """The region hangs; the worker is SIGKILLed while it waits; the reaper queues the run
    again and a new worker ends it (the region is gone by then: failed, with the reason)."""
    settings.SANDBOX_REGIONS = {**regions, "hung": silent_server}
    monkeypatch.setenv("SERVER_MANAGEMENT_TIMEOUT", "600")  # it would wait long

    with celery_worker() as worker:
        server = services.provision_sandbox(owner.user, team, "hung")
        assert wait_until(lambda: Server.objects.get(id=server.id).heartbeat_at is not None)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    stuck = Server.objects.get(id=server.id)
    assert stuck.status == Server.Status.PROVISIONING and stuck.attempts == 1

    Server.objects.filter(id=server.id).update(endpoint=regions["gone"])  # the region died too
    with celery_worker():
        later = timezone.now() + timedelta(seconds=settings.SERVER_STALE_SECONDS + 1)
        assert services.reap_stale(now=later) == 1
        assert wait_until(
            lambda: Server.objects.get(id=server.id).status != Server.Status.PROVISIONING
        )

    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert "cannot connect" in server.status_reason
    assert server.attempts == 2


def test_a_region_that_refuses_the_platform_key_ends_failed(
    regions, settings, team, owner, django_capture_on_commit_callbacks
):
    from servers.tokens import generate_key_pair

    server = provision(owner, team, "local", django_capture_on_commit_callbacks)
    settings.PLATFORM_PRIVATE_KEY = generate_key_pair().private_pem  # not the region's key

    assert services.run_provisioning(str(server.id)) == Server.Status.FAILED
    server.refresh_from_db()
    assert "refused the workspace's token" in server.status_reason
    assert "3015" in server.status_reason
