"""The cloud API the Prisma 1 CLI talks to (`CLOUD_API_ENDPOINT`), as a real GraphQL schema.

Resolvers are thin: they call the accounts and servers services, as the REST API does. The
façade owns no models. Field names and shapes follow
shared/reference/prisma1-cli-protocol.md sections 2 and 9.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest
from graphql import GraphQLError, GraphQLResolveInfo, build_schema

from accounts import audit, cli_login, session_keys
from accounts.models import Membership, SessionKey, User
from servers import clusters as cluster_names
from servers import deploys
from servers import services as servers
from servers.models import Server, Service

SDL = """
type Query {
  me: User
  cloudTokenRequest(secret: String!): CloudTokenRequest
}

type Mutation {
  requestCloudToken: CloudTokenRequest!
  renewToken: String
  generateClusterToken(input: GenerateClusterTokenRequest!): GenerateClusterTokenPayload
  addServiceToCloudDBIfMissing(input: GenerateClusterTokenRequest!): Boolean!
  deleteService(input: ServiceDeletionInput!): Service
}

input GenerateClusterTokenRequest {
  workspaceSlug: String
  clusterName: String
  serviceName: String
  stageName: String
}

input ServiceDeletionInput {
  name: String
  clusterName: String
  workspaceSlug: String
  stage: String
}

type GenerateClusterTokenPayload {
  clusterToken: String!
}

type User {
  id: ID!
  name: String
  login: [Login!]!
  memberships: [Membership!]!
}

type Login {
  email: String!
}

type Membership {
  id: ID!
  role: String!
  workspace: Workspace!
}

type Workspace {
  id: ID!
  name: String!
  slug: String!
  clusters: [Cluster!]!
  services: [Service!]!
}

type Cluster {
  id: ID!
  name: String!
  connectInfo: ConnectInfo
  customConnectionInfo: ConnectInfo
}

type ConnectInfo {
  endpoint: String!
}

type Service {
  id: ID!
  name: String!
  stage: String!
  cluster: Cluster
}

type CloudTokenRequest {
  secret: String!
  token: String
}
"""

NOT_AUTHORIZED = "Not authorized"


@dataclass
class Context:
    request: HttpRequest
    user: User | None
    key: SessionKey | None


def require_user(info: GraphQLResolveInfo) -> User:
    user = info.context.user
    if user is None:
        raise GraphQLError(NOT_AUTHORIZED)
    return user


def resolve_me(_: object, info: GraphQLResolveInfo) -> dict | None:
    # The CLI reads `me: null` as "not logged in"; it is not an error.
    user = info.context.user
    if user is None:
        return None
    memberships = Membership.objects.filter(user=user).select_related("workspace")
    offered: dict[object, list[dict]] = {}
    for server in servers.cluster_servers(user):
        offered.setdefault(server.workspace_id, []).append(cluster(server))
    listed: dict[object, list[dict]] = {}
    for service in servers.cli_services(user):
        listed.setdefault(service.server.workspace_id, []).append(service_node(service))
    return {
        "id": str(user.id),
        "name": user.name,
        "login": [{"email": user.email}],
        "memberships": [
            {
                "id": str(m.pk),
                "role": m.role.upper(),
                "workspace": {
                    "id": str(m.workspace.id),
                    "name": m.workspace.name,
                    "slug": m.workspace.slug,
                    "clusters": offered.get(m.workspace.id, []),
                    "services": listed.get(m.workspace.id, []),
                },
            }
            for m in memberships
        ],
    }


def cluster(server: Server) -> dict | None:
    """A server as the CLI's cluster (protocol reference 2.5, 4.6), under the name the CLI
    knows it by (`servers.clusters`: a sandbox is `prisma-eu1`/`prisma-us1`, so the CLI uses
    the workspace in its URLs and project names), or None when it cannot be offered. The CLI
    matches endpoints to it by origin, so `connectInfo.endpoint` is the server's origin (a
    sandbox's region too: the workspace is in each service's path)."""
    name = cluster_names.cluster_name(server)
    if name is None:
        return None
    return {
        "id": str(server.id),
        "name": name,
        "connectInfo": {"endpoint": server.endpoint},
        "customConnectionInfo": None,
    }


def service_node(service: Service) -> dict:
    """A service as `prisma1 list` shows it (2.6): the CLI drops one whose cluster is null."""
    return {
        "id": str(service.id),
        "name": service.name,
        "stage": service.stage,
        "cluster": cluster(service.server),
    }


def resolve_request_cloud_token(_: object, info: GraphQLResolveInfo) -> dict:
    request = info.context.request
    # The CLI sends no host name (its user agent is just "node"): the address must do.
    try:
        _login, secret = cli_login.start(
            client_name=cli_login.PRISMA_CLI_NAME,
            client_ip=audit.client_address(request),
            poll_interval=cli_login.PRISMA_CLI_POLL_SECONDS,
        )
    except cli_login.LoginRequestError as refused:
        raise GraphQLError(str(refused), extensions={"code": refused.code}) from None
    return {"secret": secret, "token": None}


POLL_ERRORS = {
    "access_denied": "The login was denied in the browser.",
    "expired_token": "The login request expired. Run `prisma1 login` again.",
    "invalid_grant": "Unknown or already used login request. Run `prisma1 login` again.",
}


def resolve_cloud_token_request(_: object, info: GraphQLResolveInfo, secret: str) -> dict:
    result = cli_login.poll(secret, enforce_interval=False)
    if result.status == "authorization_pending":
        # A short long poll: answered the moment the user clicks, or after a couple of seconds.
        cli_login.hold_poll(result.login_id, audit.client_address(info.context.request))
        result = cli_login.poll(secret, enforce_interval=False)
    if result.status in POLL_ERRORS:
        raise GraphQLError(POLL_ERRORS[result.status], extensions={"code": result.status})
    # While pending the CLI needs an object with `token: null`, never null itself.
    return {"secret": secret, "token": result.token}


def resolve_renew_token(_: object, info: GraphQLResolveInfo) -> str:
    require_user(info)
    key = info.context.key
    if key is None:
        raise GraphQLError(NOT_AUTHORIZED)
    return session_keys.renew(key, request=info.context.request)


WORKSPACE_REQUIRED = (
    "Say which workspace the server belongs to: use an endpoint from your workspace's cluster"
    " list, <server origin>/<workspace>/<service>/<stage>."
)


@contextmanager
def cluster_errors(workspace: str, name: str) -> Iterator[None]:
    """The answers of the operations on a workspace's cluster: a workspace the user is not a
    member of is `Not authorized` (as one that does not exist), the rest say what is wrong."""
    try:
        yield
    except Http404:
        raise GraphQLError(NOT_AUTHORIZED) from None
    except servers.UnknownServer as unknown:
        known = ", ".join(unknown.known) or "none yet"
        raise GraphQLError(
            f"The workspace “{workspace}” has no server named “{name}” to deploy to (its"
            f" servers: {known}).",
            extensions={"code": "unknown_cluster"},
        ) from None
    except PermissionDenied as denied:
        raise GraphQLError(str(denied), extensions={"code": "forbidden"}) from None
    except ValidationError as invalid:
        fields = invalid.message_dict if hasattr(invalid, "error_dict") else {"": invalid.messages}
        message = " ".join(f"{f}: {m}" if f else m for f, ms in fields.items() for m in ms)
        raise GraphQLError(message, extensions={"code": "invalid_input"}) from None
    except ValueError as invalid:
        raise GraphQLError(str(invalid), extensions={"code": "invalid_input"}) from None


def _required(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "invalid_input"})


def resolve_generate_cluster_token(_: object, info: GraphQLResolveInfo, **args: dict) -> dict:
    """Section 2.7: the CLI sends `Bearer undefined` when logged out, and only a message with
    `Not authorized` makes it log in again; a workspace the user is not a member of answers
    the same. The CLI fills in `*` or null for a workspace it does not know."""
    user = require_user(info)
    given = args["input"]
    workspace, name = given.get("workspaceSlug"), given.get("clusterName")
    service, stage = given.get("serviceName"), given.get("stageName")
    if not workspace or workspace == "*":
        raise GraphQLError(WORKSPACE_REQUIRED, extensions={"code": "workspace_required"})
    if not (name and service and stage):
        raise _required("clusterName, serviceName and stageName are required.")
    with cluster_errors(workspace, name):
        return {"clusterToken": servers.cluster_token(user, workspace, name, service, stage)}


def resolve_add_service_to_cloud_db(_: object, info: GraphQLResolveInfo, **args: dict) -> bool:
    """Section 2.8: after a deploy to a private cluster the CLI reports the service, so the
    console records it and reads its history from the server. The CLI only logs the answer and
    swallows errors; it sends a null workspace for an endpoint without one, which is then the
    one workspace of the user's with a cluster of that name (false when none or several)."""
    user = require_user(info)
    given = args["input"]
    workspace, name = given.get("workspaceSlug"), given.get("clusterName")
    service, stage = given.get("serviceName"), given.get("stageName")
    if not (name and service and stage):
        raise _required("clusterName, serviceName and stageName are required.")
    if not workspace or workspace == "*":
        workspace = servers.cluster_workspace(user, name)
        if workspace is None:
            return False
    with cluster_errors(workspace, name):
        server = servers.find_cluster(user, workspace, name)
        deploys.record_cli_service(user, server, service, stage)
    return True


def resolve_delete_service(_: object, info: GraphQLResolveInfo, **args: dict) -> dict:
    """Section 2.9: `prisma1 delete` on a shared or private cluster, with the plain service
    name. The CLI reports no deploy to a sandbox (2.8), so a service the console has not read
    from the server yet is recorded first: the deletion then reaches the server all the same
    (deleting a project the server does not have is a no-op there)."""
    user = require_user(info)
    given = args["input"]
    workspace, name = given.get("workspaceSlug"), given.get("clusterName")
    service_name, stage = given.get("name"), given.get("stage")
    if not workspace or workspace == "*":
        raise GraphQLError(WORKSPACE_REQUIRED, extensions={"code": "workspace_required"})
    if not (name and service_name and stage):
        raise _required("name, clusterName and stage are required.")
    with cluster_errors(workspace, name):
        server = servers.find_cluster(user, workspace, name)
        service = servers.server_service(server, service_name, stage) or deploys.record_cli_service(
            user, server, service_name, stage
        )
        deploys.delete_service(user, service, request=info.context.request)
    return service_node(service)


schema = build_schema(SDL)
schema.query_type.fields["me"].resolve = resolve_me
schema.query_type.fields["cloudTokenRequest"].resolve = resolve_cloud_token_request
schema.mutation_type.fields["requestCloudToken"].resolve = resolve_request_cloud_token
schema.mutation_type.fields["renewToken"].resolve = resolve_renew_token
schema.mutation_type.fields["generateClusterToken"].resolve = resolve_generate_cluster_token
schema.mutation_type.fields[
    "addServiceToCloudDBIfMissing"
].resolve = resolve_add_service_to_cloud_db
schema.mutation_type.fields["deleteService"].resolve = resolve_delete_service
