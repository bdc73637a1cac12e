"""The deploy workflow in-process (servers/deploys.py) against the sandbox region, our runtime as
a real process: create a service, run its deploys as the task would, read the truth back from
the server. The worker-process paths (killed workers, a stopped runtime) are in
test_deploy_reliability.py.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404

from accounts import services as accounts_services
from servers import deploys, runs, services, tokens
from servers.management_api import ManagementClient
from servers.models import Deploy, Server, Service
from tests.servers.conftest import (  # noqa: F401
    database,
    empty_region,
    platform_keys,
    region,
    regions,
)

BLOG = """
type User {
  id: ID! @id
  name: String!
  posts: [Post!]!
}

type Post {
  id: ID! @id
  title: String!
  author: User!
}
"""
BLOG_WITH_TAGS = BLOG + "\ntype Tag {\n  id: ID! @id\n  label: String! @unique\n}\n"


@pytest.fixture
def sandbox(regions, team, owner, platform_keys, django_capture_on_commit_callbacks):  # noqa: F811
    empty_region(regions["local"], platform_keys.private_pem)
    with django_capture_on_commit_callbacks(execute=False):
        server = services.provision_sandbox(owner.user, team, "local")
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY
    yield server
    empty_region(server.endpoint, platform_keys.private_pem)


@pytest.fixture
def queued(django_capture_on_commit_callbacks):
    """Collects what would be enqueued on commit, without a broker."""

    class Queue:
        def __call__(self, fn, *args, **kwargs):
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                result = fn(*args, **kwargs)
            self.callbacks = callbacks
            return result

    return Queue()


def run(deploy: Deploy) -> Deploy:
    outcome = runs.run_deploy(str(deploy.id), "test-task")
    deploy.refresh_from_db()
    assert outcome == deploy.status
    return deploy


def query(service: Service, document: str, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - the region's http origin
        service.endpoint, data=json.dumps({"query": document}).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def server_status(service: Service) -> dict:
    client = ManagementClient(
        service.server.endpoint,
        token=tokens.cluster_token(service.server, service.name, service.stage),
    )
    return client.migration_status(service.project, service.stage)


def test_a_new_service_is_deployed_and_answers_with_its_token(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)

    assert created.service.project == "acme~blog"
    assert created.service.endpoint == f"{sandbox.endpoint}/acme/blog/dev"
    assert created.deploy.status == Deploy.Status.QUEUED
    assert len(queued.callbacks) == 1  # the deploy task, on commit

    deploy = run(created.deploy)

    assert deploy.status == Deploy.Status.SUCCEEDED, deploy.reason
    assert deploy.revision == server_status(created.service)["revision"] == 2
    assert {step["type"] for step in deploy.steps} >= {"CreateModel", "CreateField"}
    assert deploy.started_at and deploy.finished_at and deploy.task_id == "test-task"
    created.service.refresh_from_db()
    assert (created.service.status, created.service.revision) == (Service.Status.LIVE, 2)
    assert created.service.datamodel.strip() == BLOG.strip()
    # Protected: nothing without the token, data with it.
    assert "errors" in query(created.service, "{ users { id } }")
    assert query(created.service, "{ users { id } }", created.token) == {"data": {"users": []}}


def test_an_unprotected_service_answers_without_a_token(sandbox, member, queued):
    created = queued(
        deploys.create_service, member.user, sandbox, "open", "dev", BLOG, protect=False
    )
    assert created.token == ""
    run(created.deploy)
    assert query(created.service, "{ posts { id } }") == {"data": {"posts": []}}


def test_two_workspaces_with_the_same_service_name_do_not_meet(
    sandbox,
    owner,
    outsider,
    regions,  # noqa: F811
    queued,
):
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    theirs_server = queued(services.provision_sandbox, outsider.user, other, "local")
    services.run_provisioning(str(theirs_server.id))
    theirs_server.refresh_from_db()
    ours = queued(deploys.create_service, owner.user, sandbox, "blog", "dev", BLOG)
    theirs = queued(deploys.create_service, outsider.user, theirs_server, "blog", "dev", BLOG)
    run(ours.deploy), run(theirs.deploy)

    created = query(ours.service, 'mutation { createUser(data: {name: "Ada"}) { id } }', ours.token)
    assert "errors" not in created

    assert query(theirs.service, "{ users { name } }", theirs.token) == {"data": {"users": []}}
    assert query(ours.service, "{ users { name } }", ours.token) == {
        "data": {"users": [{"name": "Ada"}]}
    }
    # Each token opens only its own service.
    assert "errors" in query(theirs.service, "{ users { name } }", ours.token)


def test_a_stranger_cannot_create_deploy_or_cancel(sandbox, owner, outsider, queued):
    with pytest.raises(Http404):
        deploys.create_service(outsider.user, sandbox, "mine", "dev", BLOG)
    created = queued(deploys.create_service, owner.user, sandbox, "blog", "dev", BLOG)
    with pytest.raises(Http404):
        deploys.request_deploy(outsider.user, created.service, BLOG)
    with pytest.raises(Http404):
        deploys.cancel_deploy(outsider.user, created.deploy)
    with pytest.raises(Http404):
        deploys.delete_service(outsider.user, created.service)


@pytest.mark.parametrize(
    ("name", "stage", "field"),
    [
        ("", "dev", "name"),
        ("1blog", "dev", "name"),
        ("blog post", "dev", "name"),
        ("acme~blog", "dev", "name"),  # the console adds the workspace itself
        ("management", "dev", "name"),
        ("blog", "import", "stage"),
        ("blog", "d" * 31, "stage"),
        ("b" * 56, "dev", "name"),  # acme~ + 56 + $dev = 65 bytes > 63
    ],
)
def test_names_the_server_would_refuse_or_cut_are_field_errors(sandbox, member, name, stage, field):
    with pytest.raises(ValidationError) as refused:
        deploys.create_service(member.user, sandbox, name, stage, BLOG)
    assert field in refused.value.message_dict
    assert not Service.objects.exists()


def test_the_name_budget_is_what_postgresql_allows_for_the_schema(sandbox, member, queued):
    budget = deploys.name_budget(sandbox)
    assert budget == 63 - len("acme~") - len("$")
    name = "b" * (budget - len("dev"))
    created = queued(deploys.create_service, member.user, sandbox, name, "dev", BLOG)
    assert run(created.deploy).status == Deploy.Status.SUCCEEDED, created.deploy.reason


def test_an_empty_or_huge_datamodel_is_refused(sandbox, member):
    for datamodel in ("", "   \n", "#" * (deploys.MAX_DATAMODEL_BYTES + 1)):
        with pytest.raises(ValidationError) as refused:
            deploys.create_service(member.user, sandbox, "blog", "dev", datamodel)
        assert "datamodel" in refused.value.message_dict


def test_a_second_service_with_the_same_name_and_stage_is_refused(sandbox, member, queued):
    queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    with pytest.raises(ValidationError) as refused:
        deploys.create_service(member.user, sandbox, "blog", "dev", BLOG)
    assert "already has a service" in str(refused.value)
    assert queued(deploys.create_service, member.user, sandbox, "blog", "prod", BLOG)


def test_a_datamodel_error_fails_with_the_servers_errors_and_changes_nothing(
    sandbox, member, queued
):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    run(created.deploy)
    broken = queued(
        deploys.request_deploy, member.user, created.service, BLOG + "\ntype Broken { name: Strin }"
    )

    deploy = run(broken)

    assert deploy.status == Deploy.Status.FAILED
    assert "error" in deploy.reason
    assert deploy.errors and all({"type", "field", "description"} <= set(e) for e in deploy.errors)
    assert deploy.revision is None
    assert server_status(created.service)["revision"] == 2


def test_a_deploy_that_loses_data_waits_for_force(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG_WITH_TAGS)
    run(created.deploy)
    assert "errors" not in query(
        created.service, 'mutation { createTag(data: {label: "x"}) { id } }', created.token
    )

    losing = run(queued(deploys.request_deploy, member.user, created.service, BLOG))

    assert losing.status == Deploy.Status.FAILED
    assert "force" in losing.reason and losing.warnings
    assert server_status(created.service)["revision"] == 2

    forced = run(queued(deploys.redeploy, member.user, losing, force=True))

    assert forced.status == Deploy.Status.SUCCEEDED, forced.reason
    assert forced.redeploy_of == losing and forced.revision == 3


def test_a_dry_run_shows_the_steps_and_applies_nothing(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    run(created.deploy)

    dry = run(
        queued(deploys.request_deploy, member.user, created.service, BLOG_WITH_TAGS, dry_run=True)
    )

    assert dry.status == Deploy.Status.SUCCEEDED
    assert any(step.get("name") == "Tag" for step in dry.steps)
    assert server_status(created.service)["revision"] == 2
    created.service.refresh_from_db()
    assert created.service.revision == 2


def test_redeploying_an_earlier_revision_rolls_back(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    first = run(created.deploy)
    run(queued(deploys.request_deploy, member.user, created.service, BLOG_WITH_TAGS))

    back = run(queued(deploys.redeploy, member.user, first))

    assert back.status == Deploy.Status.SUCCEEDED, back.reason
    assert back.revision == 4
    created.service.refresh_from_db()
    assert created.service.datamodel == first.datamodel


def test_deploying_the_same_datamodel_again_records_the_current_revision(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    run(created.deploy)

    again = run(queued(deploys.request_deploy, member.user, created.service, BLOG))

    assert again.status == Deploy.Status.SUCCEEDED
    assert (again.revision, again.steps) == (2, [])


def test_deploys_of_one_service_take_turns(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    second = queued(deploys.request_deploy, member.user, created.service, BLOG_WITH_TAGS)

    # The second is not its turn while the first waits; the first's end queues it again.
    assert runs.run_deploy(str(second.id)) == "skipped"
    with pytest.MonkeyPatch.context() as patch:
        woken: list[str] = []
        patch.setattr(deploys, "enqueue", lambda d: woken.append(str(d.id)))
        run(created.deploy)
    assert woken == [str(second.id)]
    assert run(second).status == Deploy.Status.SUCCEEDED


def test_cancel_a_queued_deploy_and_it_never_runs(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)

    cancelled = queued(deploys.cancel_deploy, member.user, created.deploy)

    assert cancelled.status == Deploy.Status.CANCELLED and member.user.email in cancelled.reason
    assert runs.run_deploy(str(created.deploy.id)) == "skipped"
    with pytest.raises(ValidationError):
        deploys.cancel_deploy(member.user, cancelled)


def test_a_running_deploy_can_be_cancelled_only_when_stuck(sandbox, member, queued, settings):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    claimed = runs.claim(str(created.deploy.id))
    assert claimed is not None
    deploy, claim_id = claimed
    with pytest.raises(ValidationError, match="running"):
        deploys.cancel_deploy(member.user, deploy)

    settings.DEPLOY_STALE_SECONDS = 0
    assert deploys.is_stuck(deploy)
    cancelled = queued(deploys.cancel_deploy, member.user, deploy)

    assert cancelled.status == Deploy.Status.CANCELLED
    # The worker that held it cannot end it any more.
    assert not runs._finish(deploy, claim_id, Deploy.Status.SUCCEEDED)


def test_deleting_a_service_removes_it_on_the_server_and_here(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    run(created.deploy)
    later = queued(deploys.request_deploy, member.user, created.service, BLOG_WITH_TAGS)

    queued(deploys.delete_service, member.user, created.service)

    later.refresh_from_db()
    assert later.status == Deploy.Status.CANCELLED
    assert runs.run_delete(str(created.service.id)) == "deleted"
    assert not Service.objects.filter(id=created.service.id).exists()
    with pytest.raises(Exception, match=r"4000|not"):
        server_status(created.service)
    assert runs.run_delete(str(created.service.id)) == "skipped"  # idempotent


def test_reconcile_records_deploys_made_behind_the_consoles_back(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    run(created.deploy)
    client = ManagementClient(sandbox.endpoint, token=tokens.cluster_token(sandbox, "blog", "dev"))
    client.deploy("acme~blog", "dev", BLOG_WITH_TAGS, secrets=[created.service.secret_value])
    # And a service the console never saw.
    cli = ManagementClient(sandbox.endpoint, token=tokens.cluster_token(sandbox, "cli", "dev"))
    cli.add_project("acme~cli", "dev")
    cli.deploy("acme~cli", "dev", BLOG)

    outcome = runs.reconcile()

    assert outcome["errors"] == 0
    recorded = created.service.deploys.get(revision=3)
    assert (recorded.source, recorded.status) == (Deploy.Source.CLI, Deploy.Status.SUCCEEDED)
    created.service.refresh_from_db()
    assert created.service.revision == 3 and "Tag" in created.service.datamodel
    # The sandbox page's storage figure: what the runtime measured for this service's schema.
    assert created.service.storage_bytes > 0 and created.service.storage_measured_at
    assert "Tag" in recorded.datamodel and any(s.get("name") == "Tag" for s in recorded.steps)
    found = Service.objects.get(server=sandbox, name="cli", stage="dev")
    assert found.origin == Service.Origin.SERVER and found.revision == 2
    assert [d.revision for d in found.deploys.all()] == [2]
    assert runs.reconcile() == {"services": 0, "deploys": 0, "errors": 0}  # idempotent


def test_reconcile_corrects_a_deploy_the_console_gave_up_on_but_the_server_applied(
    sandbox, member, queued
):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    deploy = run(created.deploy)
    # As the reaper leaves it when the worker died after the server had applied the migration.
    Deploy.objects.filter(id=deploy.id).update(
        status=Deploy.Status.FAILED, reason="the worker went away 3 times without finishing"
    )

    assert runs.reconcile()["deploys"] == 1

    deploy.refresh_from_db()
    assert deploy.status == Deploy.Status.SUCCEEDED
    assert "revision 2 ended SUCCESS: corrected" in deploy.reason


def test_a_revision_without_a_known_datamodel_cannot_be_redeployed(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    run(created.deploy)
    unknown = Deploy.objects.create(
        service=created.service, datamodel="", source=Deploy.Source.CLI, status="succeeded"
    )
    with pytest.raises(ValidationError, match="did not report"):
        deploys.redeploy(member.user, unknown)


def test_a_service_whose_deletion_failed_takes_no_deploys(sandbox, member, queued):
    created = queued(deploys.create_service, member.user, sandbox, "blog", "dev", BLOG)
    Service.objects.filter(id=created.service.id).update(
        status=Service.Status.DELETE_FAILED, status_reason="the server refused"
    )
    created.service.refresh_from_db()
    with pytest.raises(ValidationError, match="delete it again"):
        deploys.request_deploy(member.user, created.service, BLOG)
    with pytest.raises(ValidationError, match="delete it again"):
        deploys.redeploy(member.user, created.deploy)
    # Deleting again is the way on.
    queued(deploys.delete_service, member.user, created.service)
    assert runs.run_delete(str(created.service.id)) == "deleted"
