"""The endpoints `refract` needs beyond the console's own: the starter datamodels (for
`refract init`, before anyone logs in) and a new service token for a member (`refract token`
on a workspace server, where the console keeps the service's secret)."""

import jwt
from django.test import Client

from accounts.models import AuditAction, AuditEvent
from servers import deploys
from servers.starters import STARTERS
from tests.servers.api.conftest import BLANK, api, post

SERVICES = "/api/v1/workspaces/acme/services"


def test_the_starters_are_public_with_their_datamodels(db):
    response = Client().get("/api/v1/starters")

    assert response.status_code == 200
    assert response.json() == [
        {
            "key": starter.key,
            "title": starter.title,
            "description": starter.description,
            "datamodel": starter.datamodel,
        }
        for starter in STARTERS
    ]


def test_a_member_gets_a_new_service_token_and_it_is_audited(
    sandboxes, owner, member, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        service = deploys.create_service(owner.user, ours, "blog", "dev", BLANK).service

    response = post(api(member), f"{SERVICES}/{service.id}/token")

    assert response.status_code == 201, response.content
    claims = jwt.decode(response.json()["token"], service.secret_value, algorithms=["HS256"])
    assert claims["data"] == {"service": "blog@dev", "roles": ["admin"]}
    assert AuditEvent.objects.filter(action=AuditAction.SERVICE_TOKEN_ISSUED).count() == 1


def test_an_open_service_has_no_token_to_give(
    sandboxes, member, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        service = deploys.create_service(
            member.user, ours, "blog", "dev", BLANK, protect=False
        ).service

    response = post(api(member), f"{SERVICES}/{service.id}/token")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert "no secret" in str(response.json()["fields"])


def test_an_outsider_gets_404_and_no_token(
    sandboxes, owner, outsider, django_capture_on_commit_callbacks
):
    ours, _ = sandboxes
    with django_capture_on_commit_callbacks(execute=False):
        service = deploys.create_service(owner.user, ours, "blog", "dev", BLANK).service

    for path in [
        f"{SERVICES}/{service.id}/token",
        f"/api/v1/workspaces/other/services/{service.id}/token",
    ]:
        response = post(api(outsider), path)
        assert response.status_code == 404
        assert "token" not in response.json()
    assert not AuditEvent.objects.filter(action=AuditAction.SERVICE_TOKEN_ISSUED).exists()
    assert Client().post(f"{SERVICES}/{service.id}/token").status_code == 401
