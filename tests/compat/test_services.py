"""A workspace's services as the Prisma CLI knows them: `prisma1 list`,
`addServiceToCloudDBIfMissing` and `deleteService` (protocol reference 2.6, 2.8, 2.9), recorded
and deleted through the console's own workflows (servers.deploys).

Nothing here talks to a server: deleting queues a task (on commit), tested end to end with the
real CLI in test_clusters.py.
"""

from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as accounts_services
from accounts.models import AuditAction, AuditEvent
from servers.models import Server, Service
from tests.compat.test_cloud_api import gql, key_for
from tests.servers.conftest import (  # noqa: F401 - fixtures
    closed_port_origin,
    platform_keys,
    two_regions,
)

# Exactly as the CLI sends them (prisma1 list, Cluster.addServiceToCloudDBIfMissing,
# Client.deleteProject).
SERVICES = "{ me { memberships { workspace { services { id stage name cluster { name } } } } } }"
ADD = (
    "\n      mutation ($input: GenerateClusterTokenRequest!) {\n"
    "        addServiceToCloudDBIfMissing(input: $input)\n      }\n    "
)
DELETE = (
    "        mutation ($input: ServiceDeletionInput!) {\n          deleteService(input: $input)"
    " {\n            id\n          }\n        }\n      "
)


def server(workspace, kind: str, name: str, region: str = "") -> Server:
    return Server.objects.create(
        workspace=workspace,
        kind=kind,
        name=name,
        region=region,
        endpoint=closed_port_origin(),
        status=Server.Status.HEALTHY,
    )


@pytest.fixture
def fleet(two_regions, team, outsider):  # noqa: F811
    """Acme: sandboxes on both regions (eu1 first) and a self-hosted `vm`; Other (the
    outsider's): a sandbox on eu1, with a service of the same name as one of Acme's."""
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    fleet = SimpleNamespace(
        eu=server(team, Server.Kind.SANDBOX, "sandbox-eu1", "eu1"),
        us=server(team, Server.Kind.SANDBOX, "sandbox-us1", "us1"),
        vm=server(team, Server.Kind.SELF_HOSTED, "vm"),
        theirs=server(other, Server.Kind.SANDBOX, "sandbox-eu1", "eu1"),
    )
    fleet.blog = Service.objects.create(server=fleet.eu, name="blog", stage="dev")
    fleet.their_blog = Service.objects.create(server=fleet.theirs, name="blog", stage="dev")
    return fleet


def services_of(token: str) -> list[tuple]:
    """Every service the user's `prisma1 list` gets, in the order it gets them."""
    answer = gql(SERVICES, token=token)
    assert "errors" not in answer, answer
    return [
        (s["name"], s["stage"], s["cluster"] and s["cluster"]["name"])
        for m in answer["data"]["me"]["memberships"]
        for s in m["workspace"]["services"]
    ]


def ask(document: str, token: str | None, **given: object) -> dict:
    return gql(document, {"input": given}, token=token)


def test_prisma_list_shows_the_workspaces_services_under_the_cluster_names_the_cli_knows(
    fleet, owner, outsider
):
    Service.objects.create(server=fleet.us, name="shop", stage="prod", status="live")
    Service.objects.create(server=fleet.vm, name="api", stage="dev", origin="cli")
    Service.objects.create(server=fleet.vm, name="stuck", stage="dev", status="delete_failed")
    Service.objects.create(server=fleet.eu, name="old", stage="dev", status="deleting")

    assert services_of(key_for(owner)) == [
        ("api", "dev", "vm"),
        ("blog", "dev", "prisma-eu1"),
        ("shop", "prod", "prisma-us1"),
        ("stuck", "dev", "vm"),  # still there: the owner should see it to delete it again
    ]
    assert services_of(key_for(outsider)) == [("blog", "dev", "prisma-eu1")]


def test_a_service_on_a_region_the_cli_is_not_offered_has_no_cluster(
    fleet,
    owner,
    settings,
    two_regions,  # noqa: F811
):
    settings.SANDBOX_REGIONS = {**two_regions, "ap1": closed_port_origin()}
    third = server(fleet.eu.workspace, Server.Kind.SANDBOX, "sandbox-ap1", "ap1")
    Service.objects.create(server=third, name="far", stage="dev")

    # The CLI drops a service whose cluster is null (2.6): a URL it would build for it under
    # a private name would miss the workspace.
    assert ("far", "dev", None) in services_of(key_for(owner))


def test_the_services_list_takes_the_same_queries_for_many_services(fleet, owner):
    key = key_for(owner)
    services_of(key)  # the key's first use records when it was used
    with CaptureQueriesContext(connection) as few:
        services_of(key)
    for i in range(8):
        Service.objects.create(server=(fleet.vm, fleet.us)[i % 2], name=f"svc{i}", stage="dev")

    with CaptureQueriesContext(connection) as many:
        assert len(services_of(key)) == 9

    assert len(many) == len(few)


def test_a_service_the_cli_deployed_to_a_private_server_is_recorded_once(fleet, owner):
    key = key_for(owner)
    given = {"workspaceSlug": "acme", "clusterName": "vm", "serviceName": "api", "stageName": "dev"}

    for _ in range(2):
        assert ask(ADD, key, **given) == {
            "status": 200,
            "data": {"addServiceToCloudDBIfMissing": True},
        }

    recorded = Service.objects.get(server=fleet.vm)
    assert (recorded.name, recorded.stage, recorded.origin) == ("api", "dev", "cli")
    assert recorded.created_by == owner.user
    assert ("api", "dev", "vm") in services_of(key)


def test_without_a_workspace_the_one_workspace_with_that_cluster_is_meant(fleet, member):
    key = key_for(member)
    given = {"clusterName": "vm", "serviceName": "api", "stageName": "dev"}

    # The CLI sends null for an endpoint without a workspace (2.8): only Acme has a `vm`.
    assert ask(ADD, key, workspaceSlug=None, **given)["data"] == {
        "addServiceToCloudDBIfMissing": True
    }
    assert Service.objects.filter(server=fleet.vm, name="api").exists()

    # Mia's own workspace gets a `vm` too: which one is meant cannot be told, nothing is done.
    personal = member.user.memberships.exclude(workspace=fleet.vm.workspace).get().workspace
    server(personal, Server.Kind.SELF_HOSTED, "vm")
    for workspace in (None, "*"):
        answer = ask(ADD, key, workspaceSlug=workspace, **{**given, "serviceName": "other"})
        assert answer["data"] == {"addServiceToCloudDBIfMissing": False}
    assert not Service.objects.filter(name="other").exists()


def test_an_outsider_cannot_record_or_delete_a_service_in_another_workspace(fleet, outsider):
    key = key_for(outsider)
    add = {"clusterName": "vm", "serviceName": "spy", "stageName": "dev"}
    delete = {"clusterName": "prisma-eu1", "name": "blog", "stage": "dev"}

    for workspace in ("acme", "no-such-workspace"):
        added = ask(ADD, key, workspaceSlug=workspace, **add)
        deleted = ask(DELETE, key, workspaceSlug=workspace, **delete)

        assert [e["message"] for e in added["errors"]] == ["Not authorized"]
        assert [e["message"] for e in deleted["errors"]] == ["Not authorized"]
    # Without a workspace, Acme's `vm` is not among the outsider's clusters.
    assert ask(ADD, key, workspaceSlug=None, **add)["data"] == {
        "addServiceToCloudDBIfMissing": False
    }
    assert not Service.objects.filter(name="spy").exists()
    fleet.blog.refresh_from_db()
    assert fleet.blog.status == Service.Status.NEW
    fleet.their_blog.refresh_from_db()
    assert fleet.their_blog.status == Service.Status.NEW  # their own blog is not the one meant


def test_logged_out_the_cli_is_told_not_authorized(fleet):
    for token in ("undefined", None):
        add = ask(
            ADD, token, workspaceSlug="acme", clusterName="vm", serviceName="a", stageName="d"
        )
        delete = ask(DELETE, token, workspaceSlug="acme", clusterName="vm", name="a", stage="d")

        assert [e["message"] for e in add["errors"]] == ["Not authorized"]
        assert [e["message"] for e in delete["errors"]] == ["Not authorized"]


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ({"clusterName": "default"}, "unknown_cluster"),
        ({"clusterName": "sandbox-eu1"}, "unknown_cluster"),  # known to the CLI as prisma-eu1
        ({"serviceName": "acme~api"}, "invalid_input"),  # the CLI sends the plain name
        ({"serviceName": "management"}, "invalid_input"),
        ({"stageName": "x" * 31}, "invalid_input"),
        ({"serviceName": ""}, "invalid_input"),
        ({"clusterName": None}, "invalid_input"),
    ],
)
def test_a_service_that_cannot_be_recorded_gets_a_reason(fleet, owner, given, code):
    answer = ask(
        ADD,
        key_for(owner),
        **{"workspaceSlug": "acme", "clusterName": "vm", "serviceName": "api", "stageName": "dev",
           **given},
    )  # fmt: skip

    assert answer["data"] is None
    assert answer["errors"][0]["code"] == code
    assert not Service.objects.filter(server__workspace__slug="acme").exclude(name="blog").exists()


def test_prisma_delete_deletes_the_service_through_the_consoles_workflow(
    fleet, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        answer = ask(
            DELETE,
            key_for(member),
            name="blog",
            clusterName="prisma-eu1",
            workspaceSlug="acme",
            stage="dev",
        )

    assert answer == {"status": 200, "data": {"deleteService": {"id": str(fleet.blog.id)}}}
    fleet.blog.refresh_from_db()
    assert fleet.blog.status == Service.Status.DELETING
    assert len(queued) == 1  # the task that deletes it on the server, then here
    event = AuditEvent.objects.get(action=AuditAction.SERVICE_DELETED)
    assert (event.actor, event.workspace) == (member.user, fleet.eu.workspace)
    fleet.their_blog.refresh_from_db()
    assert fleet.their_blog.status == Service.Status.NEW
    assert ("blog", "dev", "prisma-eu1") not in services_of(key_for(member))


def test_prisma_delete_of_a_service_the_console_has_not_read_yet_still_reaches_the_server(
    fleet, owner, django_capture_on_commit_callbacks
):
    # The CLI reports no deploy to a shared cluster (2.8): the service may be on the sandbox
    # before the reconciliation records it.
    with django_capture_on_commit_callbacks(execute=False):
        answer = ask(
            DELETE,
            key_for(owner),
            name="fresh",
            clusterName="prisma-us1",
            workspaceSlug="acme",
            stage="dev",
        )

    service = Service.objects.get(server=fleet.us, name="fresh", stage="dev")
    assert answer["data"] == {"deleteService": {"id": str(service.id)}}
    assert (service.status, service.origin) == (Service.Status.DELETING, Service.Origin.CLI)


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ({"workspaceSlug": None}, "workspace_required"),
        ({"workspaceSlug": "*"}, "workspace_required"),
        ({"clusterName": "local"}, "unknown_cluster"),
        ({"name": "acme~blog"}, "invalid_input"),
        ({"name": None}, "invalid_input"),
        ({"stage": ""}, "invalid_input"),
    ],
)
def test_a_deletion_the_console_cannot_place_gets_a_reason_and_deletes_nothing(
    fleet, owner, given, code
):
    answer = ask(
        DELETE,
        key_for(owner),
        **{"name": "blog", "clusterName": "prisma-eu1", "workspaceSlug": "acme", "stage": "dev",
           **given},
    )  # fmt: skip

    assert answer["data"] == {"deleteService": None}
    assert answer["errors"][0]["code"] == code
    assert not Service.objects.filter(status=Service.Status.DELETING).exists()


def test_a_name_the_server_would_refuse_is_explained_field_by_field(fleet, owner):
    answer = ask(
        ADD,
        key_for(owner),
        workspaceSlug="acme",
        clusterName="vm",
        serviceName="management",
        stageName="9lives",
    )

    (error,) = answer["errors"]
    assert "name: “management” is reserved by Prisma" in error["message"]
    assert "stage: Start with a letter" in error["message"]
