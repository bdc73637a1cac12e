"""The CLI's clusters: a workspace's servers in `prismaCliGetClusters`, and the cluster tokens
`generateClusterToken` signs for one `service/stage` (protocol reference 2.5, 2.7, 4.5-4.7, 7.1).

A sandbox is offered under the shared name of its region (`prisma-eu1` for the first of
SANDBOX_REGIONS, `prisma-us1` for the second: servers.clusters), so the CLI deploys to it the
shared way, `<workspace>~<service>` at `<origin>/<workspace>/<service>/<stage>`.

The region is our runtime as a real process that trusts only the platform's public key; the
last tests run the real `prisma1` against a self-hosted server and a sandbox found in the list.
"""

import logging
import secrets

import jwt
import pytest
from django.core.exceptions import ValidationError

from accounts import services as accounts_services
from accounts import session_keys
from accounts.models import SessionKey
from servers import clusters as cluster_names
from servers import runs, services, tokens
from servers.management_api import ManagementClient, PrismaError
from servers.models import Server, Service
from tests.compat.test_cloud_api import gql, key_for
from tests.runtime.conftest import run_runtime
from tests.servers.conftest import (  # noqa: F401 - the region's fixtures
    closed_port_origin,
    database,
    platform_keys,
    region,
    regions,
)
from tests.support.prisma_cli import run_prisma
from tests.support.worker import celery_worker, wait_until

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
            "clusterName": "prisma-eu1",
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

    # The failed sandbox on `gone` is not offered; the CLI knows this one, on the first region,
    # as the shared cluster prisma-eu1 and matches endpoints to it by origin (4.4, 4.6): the
    # origin alone, no path.
    assert clusters.pop("mia-member") == []  # her personal workspace has no server
    assert clusters == {
        "acme": [
            {
                "id": str(ours.id),
                "name": "prisma-eu1",
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
        "prisma-eu1"
    ]

    Server.objects.filter(id=ours.id).update(status=Server.Status.PROVISIONING)
    assert clusters_of(gql(GET_CLUSTERS, token=key_for(owner)))["acme"] == []


def test_the_second_region_is_prisma_us1_and_a_third_is_left_out_of_the_cli_list(
    sandboxes,
    owner,
    regions,  # noqa: F811
    settings,
    caplog,
):
    ours, _ = sandboxes
    second = Server.objects.get(workspace=ours.workspace, region="gone")
    Server.objects.filter(id=second.id).update(status=Server.Status.HEALTHY)
    settings.SANDBOX_REGIONS = {**regions, "third": closed_port_origin()}
    Server.objects.create(
        workspace=ours.workspace,
        kind=Server.Kind.SANDBOX,
        name="sandbox-third",
        endpoint=settings.SANDBOX_REGIONS["third"],
        region="third",
        status=Server.Status.HEALTHY,
    )
    cluster_names._log_unoffered.cache_clear()  # logged once per region and process
    key = key_for(owner)

    with caplog.at_level(logging.WARNING, logger="servers.clusters"):
        clusters = clusters_of(gql(GET_CLUSTERS, token=key))

    # The CLI knows no third shared name; under any other it would drop the workspace from the
    # service URLs and project names (4.5), which the region routes to no workspace.
    assert {c["name"]: c["id"] for c in clusters["acme"]} == {
        "prisma-eu1": str(ours.id),
        "prisma-us1": str(second.id),
    }
    assert "sandboxes on region third are not offered to the Prisma 1 CLI" in caplog.text
    assert services.find_cluster(owner.user, "acme", "prisma-us1") == second
    assert "errors" not in ask_token(key, clusterName="prisma-us1")
    for name in ("sandbox-third", "prisma-ap1", "default"):
        assert ask_token(key, clusterName=name)["errors"][0]["code"] == "unknown_cluster"


def test_shared_names_follow_the_order_of_sandbox_regions(settings):
    settings.SANDBOX_REGIONS = {
        "paris": "https://paris.example.com",
        "oregon": "https://oregon.example.com",
        "tokyo": "https://tokyo.example.com",
    }

    assert cluster_names.shared_names() == {"paris": "prisma-eu1", "oregon": "prisma-us1"}
    assert cluster_names.region_of("prisma-us1") == "oregon"
    assert cluster_names.region_of("sandbox-tokyo") is None

    settings.SANDBOX_REGIONS = {"oregon": "https://oregon.example.com"}
    assert cluster_names.region_of("prisma-eu1") == "oregon"
    assert cluster_names.region_of("prisma-us1") is None


@pytest.mark.parametrize("kind", [Server.Kind.PRIVATE, Server.Kind.SELF_HOSTED])
@pytest.mark.parametrize("name", ["prisma-eu1", "prisma-us1", "Prisma-EU1"])
def test_a_private_or_self_hosted_server_cannot_be_named_like_a_shared_cluster(
    team, owner, kind, name
):
    server = Server(
        workspace=team,
        kind=kind,
        name=name,
        endpoint="https://prisma.example.com",
        created_by=owner.user,
    )

    with pytest.raises(ValidationError) as refused:
        server.full_clean()

    assert "the Prisma CLI's name for a sandbox region" in refused.value.message_dict["name"][0]
    server.name = "prisma-eu2"
    server.full_clean()  # any other name is the server's own


def test_a_server_saved_with_a_shared_name_is_not_offered_and_the_name_stays_the_sandboxes(
    sandboxes, owner
):
    ours, _ = sandboxes
    for name in ("prisma-eu1", "vm"):  # saved around Server.clean, as an old row would be
        server = Server(
            workspace=ours.workspace,
            kind=Server.Kind.SELF_HOSTED,
            name=name,
            endpoint=f"http://{name}.test:4466",
            status=Server.Status.HEALTHY,
        )
        server.set_management_secret(secrets.token_hex(16))
        server.save()

    clusters = clusters_of(gql(GET_CLUSTERS, token=key_for(owner)))

    assert [(c["name"], c["connectInfo"]["endpoint"]) for c in clusters["acme"]] == [
        ("prisma-eu1", ours.endpoint),
        ("vm", "http://vm.test:4466"),
    ]
    assert services.find_cluster(owner.user, "acme", "prisma-eu1") == ours


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
    # that host may be anyone's, so it gets no token for the workspace's services. A sandbox is
    # known only by its shared name, and the sandbox on the second region (prisma-us1) failed.
    for name in ("default", "local", "sandbox-local", "prisma-us1", "PRISMA-EU1", "no-such"):
        answer = ask_token(key, clusterName=name)

        assert answer["data"] == {"generateClusterToken": None}
        (error,) = answer["errors"]
        assert error["code"] == "unknown_cluster"
        assert f"no server named “{name}”" in error["message"]
        assert "(its servers: prisma-eu1)" in error["message"]
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
        "input": {"workspaceSlug": "acme", "clusterName": "prisma-eu1",
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
        # No workspace in the endpoint: the CLI takes it, and the cluster's name, from the list.
        endpoint = f"{server.endpoint}/{service}/dev"
        stranger = prisma_as(tmp_path / "outsider", key_for(outsider), endpoint, ["deploy"], env)
        assert stranger.returncode != 0
        assert "workspace" in stranger.stdout + stranger.stderr
        with pytest.raises(PrismaError):
            operator.call(PROJECT, {"n": service, "s": "dev"})

        result = prisma_as(tmp_path / "owner", key_for(owner), endpoint, ["deploy"], env)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "Applying changes" in result.stdout
        # The server knows the project: the CLI's token opened `<service>/dev` on it.
        assert operator.call(PROJECT, {"n": service, "s": "dev"})["project"]["name"] == service
        operator.delete_project(service, "dev")


def prisma_as(folder, session_key: str, endpoint: str, args: list[str], env: dict):
    """Run `prisma1 <args>` in a project of its own (made on first use) as a logged-in user."""
    home, project = folder / "home", folder / "project"
    if not project.exists():
        (home / ".prisma").mkdir(parents=True)
        (home / ".prisma" / "config.yml").write_text(
            f"cloudSessionKey: {session_key}\nclusters: {{}}\n"
        )
        project.mkdir()
        (project / "datamodel.prisma").write_text(DATAMODEL)
        (project / "prisma.yml").write_text(f"endpoint: {endpoint}\ndatamodel: datamodel.prisma\n")
    return run_prisma(args, home=home, cwd=project, env=env)


@pytest.fixture
def shared_region(database, platform_keys, settings, monkeypatch, tmp_path):  # noqa: F811
    """The only sandbox region, on 127.0.0.2: a loopback address the CLI counts as neither
    local nor shared (4.3), so it resolves the endpoint through the cluster list, where the
    region's origin is the cluster prisma-eu1. The worker reads the same settings."""
    config = {
        "managementPublicKey": platform_keys.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path, host="127.0.0.2") as running:
        settings.SANDBOX_REGIONS = {"eu": running.url}
        settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
        monkeypatch.setenv("SANDBOX_REGIONS", f"eu={running.url}")
        monkeypatch.setenv("PLATFORM_PRIVATE_KEY", platform_keys.private_pem)
        monkeypatch.delenv("PLATFORM_PRIVATE_KEY_FILE", raising=False)  # devstack exec's
        yield running


def region_projects(server: Server) -> set[tuple[str, str]]:
    """What the region lists to the workspace's own token."""
    client = ManagementClient(server.endpoint, token=tokens.workspace_token(server))
    return {(p["name"], p["stage"]) for p in client.list_projects()}


@pytest.mark.node
@pytest.mark.multiprocess
@pytest.mark.django_db(transaction=True)
def test_prisma_deploys_lists_and_deletes_a_service_on_the_workspaces_sandbox(
    owner,
    outsider,
    team,
    live_server,
    shared_region,
    tmp_path,
):
    other = accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    (tmp_path / "hook.js").write_text(NODE_HOOK)
    env = {
        "CLOUD_API_ENDPOINT": f"{live_server.url}/cloud-api",
        "TEST_CLOUD_API": f"{live_server.url}/cloud-api",
        "NODE_OPTIONS": f"--require {tmp_path / 'hook.js'}",
    }
    service = f"blog{secrets.token_hex(3)}"
    endpoint = f"{shared_region.url}/acme/{service}/dev"
    with celery_worker():
        ours = services.provision_sandbox(owner.user, team, "eu")
        # The outsider's own sandbox on the same region: their CLI matches the origin to
        # *their* prisma-eu1 cluster, and asks for acme's service all the same.
        theirs = services.provision_sandbox(outsider.user, other, "eu")
        assert wait_until(
            lambda: not Server.objects.filter(status=Server.Status.PROVISIONING).exists()
        )
        ours.refresh_from_db()
        theirs.refresh_from_db()
        assert (ours.status, theirs.status) == ("healthy", "healthy"), ours.status_reason

        stranger = prisma_as(tmp_path / "outsider", key_for(outsider), endpoint, ["deploy"], env)

        assert stranger.returncode != 0
        assert "Not authorized" in stranger.stdout + stranger.stderr
        assert region_projects(ours) == set()

        deployed = prisma_as(tmp_path / "owner", key_for(owner), endpoint, ["deploy"], env)

        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "Applying changes" in deployed.stdout
        # The shared cluster's project name and URL: the workspace's, as the region routes it.
        assert region_projects(ours) == {(f"acme~{service}", "dev")}
        assert region_projects(theirs) == set()
        assert endpoint in deployed.stdout
        path = f"/acme/{service}/dev"
        created = shared_region.post(
            path, {"query": 'mutation { createPost(data: {title: "Hi"}) { id } }'}
        )
        assert created.status == 200, created.body
        post = created.body["data"]["createPost"]
        assert shared_region.post(path, {"query": "{ posts { id title } }"}).body == {
            "data": {"posts": [{"id": post["id"], "title": "Hi"}]}
        }

        # The CLI reports no deploy to a shared cluster (2.8): the periodic reconciliation
        # finds it on the region, with its history.
        runs.reconcile([str(ours.id)])
        recorded = Service.objects.get(server=ours, name=service, stage="dev")
        assert recorded.deploys.filter(source="cli", status="succeeded").exists()

        listed = prisma_as(tmp_path / "owner", key_for(owner), endpoint, ["list"], env)

        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert any(
            line.split() == [service, "dev", "prisma-eu1"] for line in listed.stdout.splitlines()
        ), listed.stdout
        stranger_list = prisma_as(tmp_path / "outsider", key_for(outsider), endpoint, ["list"], env)
        assert service not in stranger_list.stdout

        deleted = prisma_as(
            tmp_path / "owner", key_for(owner), endpoint, ["delete", "--force"], env
        )

        assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert wait_until(lambda: not Service.objects.filter(id=recorded.id).exists())
        assert region_projects(ours) == set()
