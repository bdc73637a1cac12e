"""The CLI's clusters: a workspace's servers in `prismaCliGetClusters`, and the cluster tokens
`generateClusterToken` signs for one `service/stage` (protocol reference 2.5, 2.7, 4.6, 7.1).

The region is our runtime as a real process that trusts only the platform's public key; the
last test runs the real `prisma1 deploy` against a self-hosted server it finds in the list.
"""

import secrets

import jwt
import pytest

from accounts import services as accounts_services
from accounts import session_keys
from accounts.models import SessionKey
from servers import services, tokens
from servers.management_api import ManagementClient, PrismaError
from servers.models import Server
from tests.compat.test_cloud_api import gql, key_for
from tests.runtime.conftest import run_runtime
from tests.servers.conftest import (  # noqa: F401 - the region's fixtures
    database,
    platform_keys,
    region,
    regions,
)
from tests.support.prisma_cli import run_prisma

# Exactly as the CLI sends them (Environment.fetchClusters, Cluster.generateClusterToken).
GET_CLUSTERS = """
      query prismaCliGetClusters {
        me {
          memberships {
            workspace {
              id
              slug
              clusters {
                id
                name
                connectInfo {
                  endpoint
                }
                customConnectionInfo {
                  endpoint
                }
              }
            }
          }
        }
      }
    """
GENERATE = """
      mutation ($input: GenerateClusterTokenRequest!) {
        generateClusterToken(input: $input) {
          clusterToken
        }
      }
    """
PROJECT = "query($n: String!, $s: String!) { project(name: $n, stage: $s) { name stage } }"


@pytest.fixture
def sandboxes(regions, team, owner, outsider, django_capture_on_commit_callbacks):  # noqa: F811
    """Acme's and Other's sandboxes on the running region, checked by the provisioning run."""
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    with django_capture_on_commit_callbacks(execute=False):
        ours = services.provision_sandbox(owner.user, team, "local")
        theirs = services.provision_sandbox(outsider.user, other, "local")
        gone = services.provision_sandbox(owner.user, team, "gone")  # nothing listens there
    for server in (ours, theirs, gone):
        services.run_provisioning(str(server.id))
    for server in (ours, theirs, gone):
        server.refresh_from_db()
    assert (ours.status, theirs.status, gone.status) == ("healthy", "healthy", "failed")
    return ours, theirs


def ask_token(token: str | None, **given: object) -> dict:
    variables = {
        "input": {
            "workspaceSlug": "acme",
            "clusterName": "sandbox-local",
            "serviceName": "blog",
            "stageName": "dev",
            **given,
        }
    }
    return gql(GENERATE, variables, token=token)


def clusters_of(answer: dict) -> dict[str, list[dict]]:
    assert "errors" not in answer, answer
    return {
        m["workspace"]["slug"]: m["workspace"]["clusters"]
        for m in answer["data"]["me"]["memberships"]
    }


def test_a_members_clusters_are_the_workspaces_working_servers(sandboxes, member, region):  # noqa: F811
    ours, _ = sandboxes

    clusters = clusters_of(gql(GET_CLUSTERS, token=key_for(member)))

    # The failed sandbox on `gone` is not offered; the CLI shows this one as acme/sandbox-local
    # and matches endpoints to it by origin (4.4, 4.6): the origin alone, no path.
    assert clusters.pop("mia-member") == []  # her personal workspace has no server
    assert clusters == {
        "acme": [
            {
                "id": str(ours.id),
                "name": "sandbox-local",
                "connectInfo": {"endpoint": region.url},
                "customConnectionInfo": None,
            }
        ]
    }


def test_an_outsider_sees_only_the_clusters_of_their_own_workspaces(sandboxes, outsider):
    _, theirs = sandboxes

    clusters = clusters_of(gql(GET_CLUSTERS, token=key_for(outsider)))

    assert "acme" not in clusters
    assert [c["id"] for c in clusters["other"]] == [str(theirs.id)]


def test_an_unreachable_server_stays_a_cluster_a_provisioning_one_is_not_yet(sandboxes, owner):
    ours, _ = sandboxes
    Server.objects.filter(id=ours.id).update(status=Server.Status.UNREACHABLE)
    assert [c["name"] for c in clusters_of(gql(GET_CLUSTERS, token=key_for(owner)))["acme"]] == [
        "sandbox-local"
    ]

    Server.objects.filter(id=ours.id).update(status=Server.Status.PROVISIONING)
    assert clusters_of(gql(GET_CLUSTERS, token=key_for(owner)))["acme"] == []


def test_a_member_gets_a_token_for_exactly_that_service_stage(
    sandboxes,
    member,
    platform_keys,  # noqa: F811
):
    answer = ask_token(key_for(member))

    assert "errors" not in answer, answer
    token = answer["data"]["generateClusterToken"]["clusterToken"]
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(token, platform_keys.public_pem, algorithms=["RS256"])
    assert claims["grants"] == [{"target": "acme~blog/dev", "action": "*"}]
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_the_region_accepts_the_token_for_that_service_and_refuses_it_for_another_workspaces(
    sandboxes,
    owner,
    region,  # noqa: F811
):
    _, theirs = sandboxes
    service = f"svc{secrets.token_hex(4)}"
    answer = ask_token(key_for(owner), serviceName=service)
    ours_client = ManagementClient(
        region.url, token=answer["data"]["generateClusterToken"]["clusterToken"]
    )
    operator = ManagementClient(
        region.url, token=tokens.sign(theirs, [{"target": "*/*", "action": "*"}])
    )
    operator.add_project(f"other~{service}", "dev")
    try:
        ours_client.add_project(f"acme~{service}", "dev")
        project = ours_client.call(PROJECT, {"n": f"acme~{service}", "s": "dev"})["project"]
        assert project == {"name": f"acme~{service}", "stage": "dev"}

        for name, stage in ((f"other~{service}", "dev"), (f"acme~{service}", "prod")):
            with pytest.raises(PrismaError) as refused:
                ours_client.call(PROJECT, {"n": name, "s": stage})
            assert refused.value.code == 3015
        with pytest.raises(PrismaError) as refused:
            ours_client.delete_project(f"other~{service}", "dev")
        assert refused.value.code == 3015
        assert operator.call(PROJECT, {"n": f"other~{service}", "s": "dev"})["project"]
    finally:
        operator.delete_project(f"other~{service}", "dev")
        operator.delete_project(f"acme~{service}", "dev")


def test_an_outsider_is_not_authorized_for_another_workspaces_cluster(sandboxes, outsider):
    for workspace in ("acme", "no-such-workspace"):  # the same answer: nothing to tell apart
        answer = ask_token(key_for(outsider), workspaceSlug=workspace)

        assert answer["data"] == {"generateClusterToken": None}
        assert [e["message"] for e in answer["errors"]] == ["Not authorized"]


def test_without_a_valid_session_key_the_cli_is_told_not_authorized(sandboxes, owner):
    revoked = key_for(owner)
    session_keys.revoke(SessionKey.objects.get())
    # `Bearer undefined` is what the CLI sends when logged out (2.7); "Not authorized" is the
    # substring that makes it log in again.
    for token in ("undefined", None, "not-a-jwt", revoked):
        answer = ask_token(token)

        assert answer["status"] == 200
        assert answer["data"] == {"generateClusterToken": None}
        assert [e["message"] for e in answer["errors"]] == ["Not authorized"]


def test_an_unknown_or_unready_cluster_gets_a_reason_and_no_token(sandboxes, owner):
    key = key_for(owner)
    # `default`/`local` are what the CLI names a host it did not find in the cluster list:
    # that host may be anyone's, so it gets no token for the workspace's services.
    for name in ("default", "local", "sandbox-gone", "no-such-server"):
        answer = ask_token(key, clusterName=name)

        assert answer["data"] == {"generateClusterToken": None}
        (error,) = answer["errors"]
        assert error["code"] == "unknown_cluster"
        assert f"no server named “{name}”" in error["message"]
        assert "sandbox-local" in error["message"]
        assert "Not authorized" not in error["message"]  # a login would not help


@pytest.mark.parametrize("workspace", [None, "*"])
def test_a_workspace_the_cli_did_not_know_is_asked_for(sandboxes, owner, workspace):
    answer = ask_token(key_for(owner), workspaceSlug=workspace)

    assert answer["data"] == {"generateClusterToken": None}
    assert answer["errors"][0]["code"] == "workspace_required"


@pytest.mark.parametrize(
    "given",
    [
        {"serviceName": "*"},
        {"stageName": "*"},
        {"serviceName": "other~blog"},
        {"serviceName": "blog/dev"},
        {"serviceName": None},
        {"stageName": ""},
        {"clusterName": None},
    ],
)
def test_names_that_would_widen_the_grant_get_no_token(sandboxes, owner, given):
    answer = ask_token(key_for(owner), **given)

    assert answer["data"] == {"generateClusterToken": None}
    assert answer["errors"][0]["code"] == "invalid_input"


def test_one_root_field_per_request_holds_for_cluster_tokens(sandboxes, owner):
    twice = (
        "mutation ($input: GenerateClusterTokenRequest!) {"
        " a: generateClusterToken(input: $input) { clusterToken }"
        " b: generateClusterToken(input: $input) { clusterToken } }"
    )
    variables = {
        "input": {"workspaceSlug": "acme", "clusterName": "sandbox-local",
                  "serviceName": "blog", "stageName": "dev"}
    }  # fmt: skip

    answer = gql(twice, variables, token=key_for(owner))

    assert answer["status"] == 400
    assert answer["data"] is None


# The CLI asks for the cluster list at a hard-coded `https://api.cloud.prisma.sh` (reference
# 0.1, 2.5): the outside world, which the test points at the live console, as the reference's
# research did with a DNS hook. `vm.test` is the self-hosted server's host name: not a local
# one, so the CLI treats the server as private and resolves it through the cluster list (4.3).
NODE_HOOK = """
const dns = require('dns');
const lookup = dns.lookup;
dns.lookup = function (host, options, callback) {
  if (host === 'vm.test') host = '127.0.0.1';
  return lookup.call(this, host, options, callback);
};
const cloud = process.env.TEST_CLOUD_API;
const realFetch = global.fetch;
global.fetch = function (url, init) {
  const text = typeof url === 'string' ? url : url.url || String(url);
  if (text.startsWith('https://api.cloud.prisma.sh')) return realFetch(cloud, init);
  return realFetch(url, init);
};
"""
DATAMODEL = "type Post {\n  id: ID! @id\n  title: String!\n}\n"


@pytest.mark.node
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_prisma_deploy_resolves_the_workspaces_cluster_and_its_token(
    owner,
    outsider,
    team,
    live_server,
    database,  # noqa: F811
    tmp_path,
):
    keys = tokens.generate_key_pair()
    config = {
        "managementPublicKey": keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path) as vm:
        server = Server(
            workspace=team,
            kind=Server.Kind.SELF_HOSTED,
            name="vm",
            endpoint=vm.url.replace("127.0.0.1", "vm.test"),
            status=Server.Status.HEALTHY,
        )
        server.set_private_key(keys.private_pem)
        server.save()
        (tmp_path / "hook.js").write_text(NODE_HOOK)
        env = {
            "CLOUD_API_ENDPOINT": f"{live_server.url}/cloud-api",
            "TEST_CLOUD_API": f"{live_server.url}/cloud-api",
            "NODE_OPTIONS": f"--require {tmp_path / 'hook.js'}",
        }
        operator = ManagementClient(
            vm.url, token=tokens.sign(server, [{"target": "*/*", "action": "*"}])
        )
        service = f"blog{secrets.token_hex(3)}"

        # An outsider's CLI finds no such cluster in their list, and gets no token.
        stranger = deploy_as(tmp_path / "outsider", key_for(outsider), server, service, env)
        assert stranger.returncode != 0
        assert "workspace" in stranger.stdout + stranger.stderr
        with pytest.raises(PrismaError):
            operator.call(PROJECT, {"n": service, "s": "dev"})

        result = deploy_as(tmp_path / "owner", key_for(owner), server, service, env)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "Applying changes" in result.stdout
        # The server knows the project: the CLI's token opened `<service>/dev` on it.
        assert operator.call(PROJECT, {"n": service, "s": "dev"})["project"]["name"] == service
        operator.delete_project(service, "dev")


def deploy_as(folder, session_key: str, server: Server, service: str, env: dict):
    home, project = folder / "home", folder / "project"
    (home / ".prisma").mkdir(parents=True)
    (home / ".prisma" / "config.yml").write_text(
        f"cloudSessionKey: {session_key}\nclusters: {{}}\n"
    )
    project.mkdir()
    (project / "datamodel.prisma").write_text(DATAMODEL)
    # No workspace in the endpoint: the CLI takes it, and the cluster's name, from the list.
    (project / "prisma.yml").write_text(
        f"endpoint: {server.endpoint}/{service}/dev\ndatamodel: datamodel.prisma\n"
    )
    return run_prisma(["deploy"], home=home, cwd=project, env=env)
