"""The API's whole loop against the region (our runtime as a real process): create a service
from a starter, run its deploy, query its endpoint with the token the answer carried; deploy a
change, a dry run, a broken datamodel, a destructive one confirmed by a forced redeploy, a
rollback; delete it on the server.

Deploys run in-process (`runs.run_deploy`, the task's body); the worker's own tests run
them through Celery.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from servers import runs
from servers.models import Service
from servers.starters import get_starter
from tests.runtime.conftest import Runtime
from tests.servers.api.conftest import api, post

SERVICES = "/api/v1/workspaces/acme/services"
ITEM = "type Item {\n  id: ID! @id\n  name: String!\n}\n"
ITEM_AND_TAG = ITEM + "type Tag {\n  id: ID! @id\n  label: String!\n}\n"


class Flow:
    """A member's API client and the region, with the steps the test repeats."""

    def __init__(self, client: Client, region: Runtime, captured: Any) -> None:
        self.client, self.region, self.captured = client, region, captured

    def run(self, deploy_id: str) -> dict:
        """Run the queued deploy as the worker would, and read it back through the API."""
        assert runs.run_deploy(deploy_id) in {"succeeded", "failed"}
        return self.client.get(f"/api/v1/workspaces/acme/deploys/{deploy_id}").json()

    def deploy(self, service_id: str, **body: object) -> dict:
        with self.captured(execute=False):
            response = post(self.client, f"{SERVICES}/{service_id}/deploys", body)
        assert response.status_code == 202, response.content
        return self.run(response.json()["id"])

    def query(self, endpoint: str, query: str, token: str | None) -> Any:
        assert endpoint.startswith(self.region.url)
        return self.region.post(endpoint[len(self.region.url) :], {"query": query}, token=token)


@pytest.fixture
def flow(sandboxes, member, region, django_capture_on_commit_callbacks) -> Flow:
    return Flow(api(member), region, django_capture_on_commit_callbacks)


def test_a_service_made_through_the_api_answers_queries_with_its_token(flow, sandboxes):
    ours, _ = sandboxes
    with flow.captured(execute=False):
        response = post(
            flow.client, SERVICES, {"server": str(ours.id), "name": "shop", "starter": "blank"}
        )
    assert response.status_code == 201, response.content
    created = response.json()

    deployed = flow.run(created["deploy"]["id"])
    service = flow.client.get(f"{SERVICES}/{created['id']}").json()

    assert deployed["status"] == "succeeded", deployed["reason"]
    assert deployed["migration_status"] == "SUCCESS" and deployed["revision"] == 2
    assert deployed["steps"] and deployed["errors"] == [] and deployed["finished_at"]
    assert service["status"] == "live" and service["revision"] == 2
    assert service["datamodel"] == get_starter("blank").datamodel
    token = created["token"]
    made = flow.query(
        service["endpoint"], 'mutation { createItem(data: {name: "first"}) { id } }', token
    )
    read = flow.query(service["endpoint"], "{ items { name done } }", token)
    refused = flow.query(service["endpoint"], "{ items { name } }", None)
    assert "errors" not in made.body, made.body
    assert read.body == {"data": {"items": [{"name": "first", "done": False}]}}
    assert [e["code"] for e in refused.body["errors"]] == [3015]  # no token: refused
    assert "data" not in refused.body

    # The periodic check measures what it stores.
    assert service["storage_bytes"] is None
    runs.reconcile([str(ours.id)])
    measured = flow.client.get(f"{SERVICES}/{created['id']}").json()
    assert measured["storage_bytes"] > 0 and measured["storage_measured_at"]


def test_the_history_of_a_service_follows_the_server(flow, sandboxes):
    ours, _ = sandboxes
    with flow.captured(execute=False):
        created = post(
            flow.client,
            SERVICES,
            {"server": str(ours.id), "name": "blog", "datamodel": ITEM, "protect": False},
        ).json()
    service_id, endpoint = created["id"], created["endpoint"]
    first = flow.run(created["deploy"]["id"])
    assert first["status"] == "succeeded", first["reason"]

    # A dry run shows the steps and applies nothing.
    dry = flow.deploy(service_id, datamodel=ITEM_AND_TAG, dry_run=True)
    assert dry["status"] == "succeeded" and dry["revision"] is None
    assert any("Tag" in str(step) for step in dry["steps"])
    assert flow.client.get(f"{SERVICES}/{service_id}").json()["revision"] == 2

    # A change is applied as the next revision.
    second = flow.deploy(service_id, datamodel=ITEM_AND_TAG)
    assert second["status"] == "succeeded" and second["revision"] == 3
    made = flow.query(endpoint, 'mutation { createTag(data: {label: "x"}) { id } }', None)
    assert "errors" not in made.body, made.body

    # A broken datamodel fails with the server's errors, field by field, and changes nothing.
    broken = flow.deploy(service_id, datamodel="type Item {\n  name: Strin!\n}\n")
    assert broken["status"] == "failed" and broken["errors"]
    assert all({"type", "field", "description"} <= set(e) for e in broken["errors"])
    assert broken["errors"][0]["type"] == "Item"
    assert flow.client.get(f"{SERVICES}/{service_id}").json()["revision"] == 3

    # Dropping Tag (it has a row) needs confirmation: the warning, then a forced redeploy.
    lossy = flow.deploy(service_id, datamodel=ITEM)
    assert lossy["status"] == "failed" and "confirm" in lossy["reason"]
    assert [w["type"] for w in lossy["warnings"]] == ["Tag"]
    with flow.captured(execute=False):
        forced = post(
            flow.client, f"/api/v1/workspaces/acme/deploys/{lossy['id']}/redeploy", {"force": True}
        )
    assert forced.status_code == 202, forced.content
    confirmed = flow.run(forced.json()["id"])
    assert confirmed["status"] == "succeeded" and confirmed["revision"] == 4
    assert confirmed["redeploy_of"] == lossy["id"]

    # Rolling back to the second deploy brings Tag back, as revision 5.
    with flow.captured(execute=False):
        again = post(flow.client, f"/api/v1/workspaces/acme/deploys/{second['id']}/redeploy")
    rolled = flow.run(again.json()["id"])
    assert rolled["status"] == "succeeded" and rolled["revision"] == 5
    tags = flow.query(endpoint, "{ tags { label } }", None)
    assert tags.body == {"data": {"tags": []}}

    listed = flow.client.get(f"{SERVICES}/{service_id}/deploys").json()["results"]
    assert [d["id"] for d in listed] == [
        rolled["id"], confirmed["id"], lossy["id"], broken["id"], second["id"], dry["id"],
        first["id"],
    ]  # fmt: skip
    assert [d["revision"] for d in listed] == [5, 4, None, None, 3, None, 2]


def test_deleting_through_the_api_deletes_it_on_the_server(flow, sandboxes):
    ours, _ = sandboxes
    with flow.captured(execute=False):
        created = post(
            flow.client,
            SERVICES,
            {"server": str(ours.id), "name": "gone", "datamodel": ITEM, "protect": False},
        ).json()
    assert flow.run(created["deploy"]["id"])["status"] == "succeeded"
    assert flow.query(created["endpoint"], "{ items { id } }", None).body == {"data": {"items": []}}

    with flow.captured(execute=False) as queued:
        response = flow.client.delete(f"{SERVICES}/{created['id']}")
    assert response.status_code == 202 and len(queued) == 1
    assert runs.run_delete(created["id"]) == "deleted"

    assert not Service.objects.filter(id=created["id"]).exists()
    assert flow.client.get(f"{SERVICES}/{created['id']}").status_code == 404
    (error,) = flow.query(created["endpoint"], "{ items { id } }", None).body["errors"]
    assert error["code"] == 3016 and "acme~gone$dev" in error["message"]  # project not found


def test_two_workspaces_with_the_same_service_never_meet(flow, sandboxes, outsider):
    ours, theirs = sandboxes
    answers = {}
    for client, slug, server in [
        (flow.client, "acme", ours),
        (api(outsider), "other", theirs),
    ]:
        with flow.captured(execute=False):
            response = post(
                client,
                f"/api/v1/workspaces/{slug}/services",
                {"server": str(server.id), "name": "blog", "starter": "blank"},
            )
        assert response.status_code == 201, response.content
        answers[slug] = response.json()
        assert runs.run_deploy(answers[slug]["deploy"]["id"]) == "succeeded"
    acme, other = answers["acme"], answers["other"]

    flow.query(
        acme["endpoint"], 'mutation { createItem(data: {name: "ours"}) { id } }', acme["token"]
    )

    assert acme["endpoint"] != other["endpoint"]
    assert flow.query(other["endpoint"], "{ items { name } }", other["token"]).body == {
        "data": {"items": []}
    }
    crossed = flow.query(other["endpoint"], "{ items { name } }", acme["token"]).body
    assert [e["code"] for e in crossed["errors"]] == [3015]
