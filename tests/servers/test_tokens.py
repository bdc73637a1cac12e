"""Management tokens: RS256, short-lived, one `service/stage`, never another workspace's."""

import jwt
import pytest

from accounts import services as accounts_services
from servers import services, tokens
from servers.management_api import ManagementClient, PrismaError
from servers.models import Server


@pytest.fixture
def sandboxes(regions, team, owner, outsider, django_capture_on_commit_callbacks):
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    with django_capture_on_commit_callbacks(execute=False):
        ours = services.provision_sandbox(owner.user, team, "local")
        theirs = services.provision_sandbox(outsider.user, other, "local")
    return ours, theirs


def test_a_cluster_token_grants_one_service_stage_of_the_workspace(sandboxes, platform_keys):
    ours, _ = sandboxes
    token = tokens.cluster_token(ours, "blog", "dev")

    claims = jwt.decode(token, platform_keys.public_pem, algorithms=["RS256"])
    assert claims["grants"] == [{"target": "acme~blog/dev", "action": "*"}]
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_the_workspace_token_is_scoped_to_the_workspace(sandboxes, platform_keys):
    _, theirs = sandboxes

    claims = jwt.decode(tokens.workspace_token(theirs), platform_keys.public_pem, ["RS256"])
    assert claims["grants"] == [{"target": "other~*/*", "action": "*"}]


@pytest.mark.parametrize(
    ("service", "stage"),
    [("*", "dev"), ("blog", "*"), ("a/b", "dev"), ("other~blog", "dev"), ("", "dev"), ("b", "")],
)
def test_names_cannot_widen_a_grant(sandboxes, service, stage):
    ours, _ = sandboxes
    with pytest.raises(ValueError):
        tokens.cluster_token(ours, service, stage)


def test_the_region_refuses_a_workspace_token_for_another_workspaces_service(sandboxes, region):
    ours, theirs = sandboxes
    admin = ManagementClient(
        region.url, token=tokens.sign(theirs, [{"target": "*/*", "action": "*"}])
    )
    admin.add_project("other~blog", "dev")
    try:
        with pytest.raises(PrismaError) as refused:
            ManagementClient(region.url, token=tokens.cluster_token(ours, "blog", "dev")).call(
                "query($n: String!, $s: String!) { project(name: $n, stage: $s) { name } }",
                {"n": "other~blog", "s": "dev"},
            )
        assert refused.value.code == 3015
        theirs_client = ManagementClient(
            region.url, token=tokens.cluster_token(theirs, "blog", "dev")
        )
        data = theirs_client.call(
            "query($n: String!, $s: String!) { project(name: $n, stage: $s) { name } }",
            {"n": "other~blog", "s": "dev"},
        )
        assert data["project"]["name"] == "other~blog"
    finally:
        admin.delete_project("other~blog", "dev")


def test_a_token_signed_with_a_servers_own_key_is_rs256(team, owner):
    key_pair = tokens.generate_key_pair()
    server = Server(workspace=team, kind=Server.Kind.PRIVATE, name="p", endpoint="http://x")
    server.set_private_key(key_pair.private_pem)

    claims = jwt.decode(tokens.cluster_token(server, "blog", "dev"), key_pair.public_pem, ["RS256"])
    assert claims["grants"] == [{"target": "blog/dev", "action": "*"}]
