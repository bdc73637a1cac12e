"""Deploys over REST: the history newest first by cursor, deploying, the deploy's detail with
its stuck flag, cancelling, redeploying; strangers get 404 and bad input a 400 by field.

These tests queue deploys and never run them (the on-commit task is captured); the flow test
runs them against the region.
"""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent
from servers import deploys, runs
from servers.models import Deploy, Service
from tests.servers.api.conftest import BLANK, api, post

ACME = "/api/v1/workspaces/acme"


@pytest.fixture
def service(sandboxes, owner, django_capture_on_commit_callbacks) -> Service:
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        return deploys.create_service(owner.user, ours, "blog", "dev", BLANK).service


def history(service: Service) -> str:
    return f"{ACME}/services/{service.id}/deploys"


def running(deploy: Deploy) -> Deploy:
    """Claim the deploy as a worker does (the worker then never beats: tests age its beat)."""
    assert runs.claim(str(deploy.id)) is not None
    deploy.refresh_from_db()
    return deploy


def test_a_member_deploys_and_gets_202_with_the_queued_deploy(
    service, member, django_capture_on_commit_callbacks
):
    datamodel = BLANK + "type Tag {\n  id: ID! @id\n}\n"
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = post(api(member), history(service), {"datamodel": datamodel, "force": True})

    assert response.status_code == 202, response.content
    body = response.json()
    deploy = Deploy.objects.get(id=body["id"])
    assert deploy.service == service and deploy.datamodel == datamodel
    assert body["status"] == "queued" and body["source"] == "api"
    assert body["force"] is True and body["dry_run"] is False
    assert body["final"] is False and body["stuck"] is False
    assert body["requested_by"] == member.email and body["datamodel"] == datamodel
    assert len(queued) == 1
    assert AuditEvent.objects.filter(action=AuditAction.DEPLOY_REQUESTED).count() == 1


def test_a_dry_run_is_queued_as_one(service, member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = post(api(member), history(service), {"datamodel": BLANK, "dry_run": True})

    assert response.status_code == 202
    assert response.json()["dry_run"] is True
    assert Deploy.objects.get(id=response.json()["id"]).dry_run


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "datamodel", "This field is required."),
        ({"datamodel": 5}, "datamodel", "Not a valid string."),
        ({"datamodel": None}, "datamodel", "This field may not be null."),
        ({"datamodel": ""}, "datamodel", "This field may not be blank."),
        ({"datamodel": " "}, "datamodel", "The datamodel is empty."),
        ({"datamodel": "#" * (256 * 1024 + 1)}, "datamodel", "larger than 256 KB"),
        ({"datamodel": BLANK, "force": "perhaps"}, "force", "Must be a valid boolean."),
        ({"datamodel": BLANK, "dry_run": [1]}, "dry_run", "Must be a valid boolean."),
    ],
)
def test_bad_deploys_are_refused_field_by_field(service, member, body, field, message):
    response = post(api(member), history(service), body)

    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["fields"][field])
    assert service.deploys.count() == 1  # the first one only


def test_a_service_being_deleted_takes_no_deploys(
    service, owner, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        deploys.delete_service(owner.user, service)

    response = post(api(member), history(service), {"datamodel": BLANK})

    assert response.status_code == 400
    assert response.json()["fields"] == {"service": ["The service is being deleted."]}


def test_the_history_is_newest_first_in_pages_by_cursor(
    service, owner, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(24):
            deploys.request_deploy(owner.user, service, BLANK)
    expected = [
        str(i) for i in service.deploys.order_by("-created_at", "-id").values_list("id", flat=True)
    ]
    client = api(member)

    first = client.get(history(service)).json()
    second = client.get(first["next"]).json()
    small = client.get(history(service), {"page_size": 5}).json()

    assert [d["id"] for d in first["results"]] == expected[:20]
    assert [d["id"] for d in second["results"]] == expected[20:]
    assert second["next"] is None and second["previous"] is not None
    assert [d["id"] for d in small["results"]] == expected[:5]
    assert "datamodel" not in first["results"][0]  # the detail has it


def test_a_bad_cursor_is_404(service, member):
    response = api(member).get(history(service), {"cursor": "bz14"})  # o=x: no offset

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Invalid cursor"}


def test_the_history_does_not_query_per_deploy(
    service, owner, member, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    client = api(member)
    with django_assert_max_num_queries(100) as one:
        assert len(client.get(history(service)).json()["results"]) == 1
    with django_capture_on_commit_callbacks(execute=False):
        for _ in range(5):
            deploys.request_deploy(member.user, service, BLANK)

    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(client.get(history(service)).json()["results"]) == 6


def test_the_detail_says_whether_a_running_deploy_is_stuck(service, member, settings):
    deploy = service.deploys.get()
    client = api(member)

    fresh = client.get(f"{ACME}/deploys/{running(deploy).id}").json()
    Deploy.objects.filter(id=deploy.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.DEPLOY_STALE_SECONDS + 60)
    )
    silent = client.get(f"{ACME}/deploys/{deploy.id}").json()

    assert fresh["status"] == "running" and fresh["stuck"] is False
    assert fresh["started_at"] is not None and fresh["attempts"] == 1
    assert silent["status"] == "running" and silent["stuck"] is True
    assert silent["datamodel"] == BLANK and silent["service"] == str(service.id)


def test_a_queued_deploy_is_cancelled_once(service, member):
    deploy = service.deploys.get()
    client = api(member)

    response = post(client, f"{ACME}/deploys/{deploy.id}/cancel")
    again = post(client, f"{ACME}/deploys/{deploy.id}/cancel")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "cancelled" and body["final"] is True
    assert body["reason"] == f"cancelled by {member.email} before it started"
    assert again.status_code == 400
    assert again.json()["fields"] == {
        "non_field_errors": ["This deploy already ended (Cancelled)."]
    }


def test_a_running_deploy_is_cancelled_only_when_stuck(service, member, settings):
    deploy = running(service.deploys.get())
    client = api(member)

    refused = post(client, f"{ACME}/deploys/{deploy.id}/cancel")
    Deploy.objects.filter(id=deploy.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.DEPLOY_STALE_SECONDS + 60)
    )
    cancelled = post(client, f"{ACME}/deploys/{deploy.id}/cancel")

    assert refused.status_code == 400
    assert "cannot be stopped half-way" in refused.json()["fields"]["non_field_errors"][0]
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert "stopped making progress" in cancelled.json()["reason"]


def test_a_redeploy_brings_back_that_deploys_datamodel(
    service, member, django_capture_on_commit_callbacks
):
    earlier = service.deploys.get()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = post(api(member), f"{ACME}/deploys/{earlier.id}/redeploy", {"force": True})

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["redeploy_of"] == str(earlier.id) and body["force"] is True
    assert body["datamodel"] == earlier.datamodel and body["status"] == "queued"
    assert body["source"] == "api" and len(queued) == 1


def test_a_redeploy_without_a_body_is_not_forced(
    service, member, django_capture_on_commit_callbacks
):
    earlier = service.deploys.get()
    with django_capture_on_commit_callbacks(execute=False):
        response = api(member).post(f"{ACME}/deploys/{earlier.id}/redeploy")

    assert response.status_code == 202, response.content
    assert response.json()["force"] is False


def test_an_outsider_gets_404_for_every_deploy_endpoint(
    service, outsider, django_capture_on_commit_callbacks
):
    deploy = service.deploys.get()
    client = api(outsider)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        answers = [
            client.get(history(service)),
            post(client, history(service), {"datamodel": BLANK}),
            client.get(f"{ACME}/deploys/{deploy.id}"),
            post(client, f"{ACME}/deploys/{deploy.id}/cancel"),
            post(client, f"{ACME}/deploys/{deploy.id}/redeploy", {}),
            # Under the outsider's own workspace, Acme's ids are as unknown.
            client.get(f"/api/v1/workspaces/other/services/{service.id}/deploys"),
            client.get(f"/api/v1/workspaces/other/deploys/{deploy.id}"),
            post(client, f"/api/v1/workspaces/other/deploys/{deploy.id}/cancel"),
            post(client, f"/api/v1/workspaces/other/deploys/{deploy.id}/redeploy", {}),
        ]

    for response in answers:
        assert response.status_code == 404, response.content
        assert response.json()["code"] == "not_found"
        assert str(deploy.id) not in response.content.decode()
    assert not queued
    deploy.refresh_from_db()
    assert deploy.status == "queued" and service.deploys.count() == 1


def test_a_member_of_acme_cannot_reach_others_deploys_either(sandboxes, member, their_service):
    theirs = their_service.deploys.get()
    client = api(member)

    for response in [
        client.get(f"{ACME}/services/{their_service.id}/deploys"),
        client.get(f"{ACME}/deploys/{theirs.id}"),
        post(client, f"{ACME}/deploys/{theirs.id}/cancel"),
        client.get(f"/api/v1/workspaces/other/deploys/{theirs.id}"),
    ]:
        assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "queued"


@pytest.mark.parametrize("deploy_id", [str(uuid.uuid4()), "not-a-uuid", "0", "..%2f..%2fadmin"])
def test_unknown_and_malformed_deploy_ids_are_404_in_json(sandboxes, member, deploy_id):
    client = api(member)

    for response in [
        client.get(f"{ACME}/deploys/{deploy_id}"),
        post(client, f"{ACME}/deploys/{deploy_id}/cancel"),
        post(client, f"{ACME}/deploys/{deploy_id}/redeploy"),
    ]:
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
