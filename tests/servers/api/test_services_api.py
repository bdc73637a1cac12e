"""Services over REST: create (with the first deploy and the token, once), list, detail,
delete; members may, strangers get 404, and bad input is refused field by field."""

import uuid

import jwt
import pytest
from django.test import Client

from accounts.models import AuditAction, AuditEvent
from servers import deploys, services
from servers.models import Deploy, Service
from servers.starters import get_starter
from tests.servers.api.conftest import BLANK, api, post

SERVICES = "/api/v1/workspaces/acme/services"


def create(client, server, **given):
    return post(client, SERVICES, {"server": str(server.id), "name": "blog", **given})


def test_a_member_creates_a_service_and_gets_it_with_its_first_deploy_and_token_once(
    sandboxes, member, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = create(api(member), ours, stage="prod", datamodel=BLANK)

    assert response.status_code == 201, response.content
    body = response.json()
    service = Service.objects.get()
    deploy = Deploy.objects.get()
    assert body["id"] == str(service.id) and body["server"] == str(ours.id)
    assert (body["name"], body["stage"], body["status"]) == ("blog", "prod", "new")
    assert body["endpoint"] == f"{ours.endpoint}/acme/blog/prod"
    assert body["origin"] == "api" and body["protected"] is True and body["starter"] == ""
    assert body["deploy"]["id"] == str(deploy.id)
    assert body["deploy"]["status"] == "queued" and body["deploy"]["source"] == "api"
    assert body["deploy"]["datamodel"] == BLANK
    assert body["deploy"]["requested_by"] == member.email
    assert len(queued) == 1  # the deploy task, on commit
    claims = jwt.decode(body["token"], service.secret_value, algorithms=["HS256"])
    assert claims["data"] == {"service": "blog@prod", "roles": ["admin"]}
    # The token is in no later answer.
    detail = api(member).get(f"{SERVICES}/{service.id}").json()
    assert "token" not in detail and body["token"] not in str(detail)
    assert AuditEvent.objects.filter(action=AuditAction.SERVICE_CREATED).count() == 1


def test_a_starter_is_deployed_by_its_key_and_an_open_service_has_no_token(
    sandboxes, member, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        response = create(api(member), ours, starter="blog", protect=False)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["stage"] == "dev"  # the default
    assert body["starter"] == "blog" and body["protected"] is False and body["token"] == ""
    assert body["deploy"]["datamodel"] == get_starter("blog").datamodel


def test_list_and_detail_show_the_workspaces_services_only(
    sandboxes, owner, member, their_service, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        blog = deploys.create_service(owner.user, ours, "blog", "dev", BLANK).service
        shop = deploys.create_service(owner.user, ours, "shop", "dev", BLANK).service
    client = api(member)

    listed = client.get(SERVICES).json()
    detail = client.get(f"{SERVICES}/{blog.id}").json()

    assert [s["id"] for s in listed] == [str(blog.id), str(shop.id)]
    assert str(their_service.id) not in str(listed)  # Other's service of the same name
    assert detail["datamodel"] == "" and detail["revision"] is None  # nothing applied yet
    assert {k: v for k, v in detail.items() if k != "datamodel"} == listed[0]
    assert listed[0]["server_name"] == ours.name


def test_the_servers_show_how_many_services_they_have(
    sandboxes, owner, member, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        deploys.create_service(owner.user, ours, "blog", "dev", BLANK)
        deploys.create_service(owner.user, ours, "blog", "prod", BLANK)
    client = api(member)

    (listed,) = client.get("/api/v1/workspaces/acme/servers").json()
    detail = client.get(f"/api/v1/workspaces/acme/servers/{ours.id}").json()

    assert listed["services_count"] == detail["services_count"] == 2
    # `<acme>~<service>$<stage>` must fit 63 bytes: 63 - len("acme~") - len("$").
    assert listed["service_name_budget"] == detail["service_name_budget"] == 57


def test_deleting_a_service_answers_202_and_queues_the_deletion(
    sandboxes, owner, member, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        created = deploys.create_service(owner.user, ours, "blog", "dev", BLANK)
    client = api(member)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.delete(f"{SERVICES}/{created.service.id}")
    again = client.delete(f"{SERVICES}/{created.service.id}")

    assert response.status_code == 202, response.content
    assert response.json()["status"] == "deleting"
    assert len(queued) == 1  # the delete task
    assert again.status_code == 202 and again.json()["status"] == "deleting"  # idempotent
    created.deploy.refresh_from_db()
    assert created.deploy.status == "cancelled"  # its queued deploy goes with it


@pytest.mark.parametrize(
    ("given", "field", "message"),
    [
        ({"name": ""}, "name", "This field may not be blank."),
        ({"name": 5}, "name", "Not a valid string."),
        ({"name": "x" * 64}, "name", "Ensure this field has no more than 63 characters."),
        ({"name": "x" * 57}, "name", "Too long: on this server a service name and its stage"),
        ({"name": "cluster"}, "name", "“cluster” is reserved by Prisma; choose another name."),
        ({"name": "1blog"}, "name", "Start with a letter;"),
        ({"name": "a~b"}, "name", "Start with a letter;"),
        ({"stage": "management"}, "stage", "“management” is reserved by Prisma"),
        ({"stage": "x" * 31}, "stage", "Ensure this field has no more than 30 characters."),
        ({"datamodel": 5}, "datamodel", "Not a valid string."),
        ({"datamodel": ["type A"]}, "datamodel", "Not a valid string."),
        ({"datamodel": "   \n"}, "datamodel", "The datamodel is empty."),
        ({"datamodel": "#" * (256 * 1024 + 1)}, "datamodel", "larger than 256 KB"),
        ({"starter": "wiki"}, "starter", '"wiki" is not a valid choice.'),
        ({"starter": "blog", "datamodel": BLANK}, "datamodel", "Give a datamodel or a starter"),
        ({"protect": "maybe"}, "protect", "Must be a valid boolean."),
        ({"server": "not-a-uuid"}, "server", "Must be a valid UUID."),
        ({"server": str(uuid.uuid4())}, "server", "No such server in this workspace."),
        ({"server": None}, "server", "This field may not be null."),
    ],
)
def test_bad_input_is_refused_field_by_field_and_creates_nothing(
    sandboxes, member, given, field, message
):
    ours, _ = sandboxes
    body = {"server": str(ours.id), "name": "blog", "datamodel": BLANK, **given}

    response = post(api(member), SERVICES, body)

    assert response.status_code == 400, response.content
    answer = response.json()
    assert answer["code"] == "invalid"
    assert message in " ".join(answer["fields"][field]), answer
    assert not Service.objects.exists() and not Deploy.objects.exists()


def test_a_missing_body_names_every_required_field(sandboxes, member):
    response = post(api(member), SERVICES, {})

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"server", "name"}


def test_a_datamodel_or_a_starter_is_needed(sandboxes, member):
    ours, _ = sandboxes

    response = create(api(member), ours)

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "datamodel": ["Give a datamodel or a starter (one of them)."]
    }


def test_a_body_over_the_request_limit_is_413(sandboxes, member):
    ours, _ = sandboxes
    response = create(api(member), ours, datamodel="#" * (1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_another_workspaces_server_is_unknown_here(sandboxes, member):
    _, theirs = sandboxes

    response = create(api(member), theirs, datamodel=BLANK)

    assert response.status_code == 400
    assert response.json()["fields"] == {"server": ["No such server in this workspace."]}
    assert not Service.objects.exists()


def test_a_taken_name_is_refused(sandboxes, member, django_capture_on_commit_callbacks):
    ours, _ = sandboxes
    client = api(member)
    with django_capture_on_commit_callbacks(execute=False):
        create(client, ours, datamodel=BLANK)

    response = create(client, ours, datamodel=BLANK)

    assert response.status_code == 400
    assert response.json()["fields"]["name"] == [
        f"{ours.name} already has a service blog with stage dev."
    ]
    assert Service.objects.count() == 1


def test_a_server_that_cannot_take_deploys_is_refused_with_the_reason(
    regions, owner, team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        gone = services.provision_sandbox(owner.user, team, "gone")
    services.run_provisioning(str(gone.id))  # nothing listens there: failed

    response = create(api(owner), gone, datamodel=BLANK)

    assert response.status_code == 400
    assert response.json()["fields"]["server"] == [
        "sandbox-gone is failed: it cannot take deploys now."
    ]


def test_an_outsider_gets_404_for_everything_of_another_workspace(
    sandboxes, owner, outsider, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        service = deploys.create_service(owner.user, ours, "blog", "dev", BLANK).service
    client = api(outsider)

    answers = [
        client.get(SERVICES),
        create(client, ours, datamodel=BLANK),
        client.get(f"{SERVICES}/{service.id}"),
        client.delete(f"{SERVICES}/{service.id}"),
        # Acme's service id under the outsider's own workspace is as unknown.
        client.get(f"/api/v1/workspaces/other/services/{service.id}"),
        client.delete(f"/api/v1/workspaces/other/services/{service.id}"),
    ]

    for response in answers:
        assert response.status_code == 404, response.content
        assert response.json()["code"] == "not_found"
        assert str(service.id) not in response.content.decode()
    service.refresh_from_db()
    assert service.status == "new" and Service.objects.count() == 1


@pytest.mark.parametrize("service_id", [str(uuid.uuid4()), "not-a-uuid", "1", "%00", "' OR 1=1"])
def test_unknown_and_malformed_ids_are_404_in_json(sandboxes, member, service_id):
    client = api(member)

    for response in [
        client.get(f"{SERVICES}/{service_id}"),
        client.delete(f"{SERVICES}/{service_id}"),
        client.get(f"{SERVICES}/{service_id}/deploys"),
    ]:
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_without_credentials_it_is_401(db):
    assert Client().get(SERVICES).status_code == 401
    assert Client().post(SERVICES, {}, content_type="application/json").status_code == 401


def test_the_list_does_not_query_per_service(
    sandboxes, owner, member, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    client = api(member)
    with django_capture_on_commit_callbacks(execute=False):
        deploys.create_service(owner.user, ours, "one", "dev", BLANK)
    with django_assert_max_num_queries(100) as one:
        assert len(client.get(SERVICES).json()) == 1
    with django_capture_on_commit_callbacks(execute=False):
        for name in ("two", "three", "four"):
            deploys.create_service(owner.user, ours, name, "dev", BLANK)

    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(client.get(SERVICES).json()) == 4
