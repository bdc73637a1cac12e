"""The cloud API the Prisma 1 CLI talks to (`CLOUD_API_ENDPOINT`), as a real GraphQL schema.

Resolvers are thin: they call the accounts and servers services, as the REST API does. The
façade owns no models. Field names and shapes follow
shared/reference/prisma1-cli-protocol.md sections 2 and 9.
"""

from dataclasses import dataclass

from django.http import Http404, HttpRequest
from graphql import GraphQLError, GraphQLResolveInfo, build_schema

from accounts import audit, cli_login, session_keys
from accounts.models import Membership, SessionKey, User
from servers import services as servers
from servers.models import Server

SDL = """
type Query {
  me: User
  cloudTokenRequest(secret: String!): CloudTokenRequest
}

type Mutation {
  requestCloudToken: CloudTokenRequest!
  renewToken: String
  generateClusterToken(input: GenerateClusterTokenRequest!): GenerateClusterTokenPayload
}

input GenerateClusterTokenRequest {
  workspaceSlug: String
  clusterName: String
  serviceName: String
  stageName: String
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
    clusters: dict[object, list[dict]] = {}
    for server in servers.cluster_servers(user):
        clusters.setdefault(server.workspace_id, []).append(cluster(server))
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
                    "clusters": clusters.get(m.workspace.id, []),
                    # Services arrive with the servers issue.
                    "services": [],
                },
            }
            for m in memberships
        ],
    }


def cluster(server: Server) -> dict:
    """A server as the CLI's cluster (protocol reference 2.5, 4.6): the CLI shows it as
    `<workspace>/<name>`, matches endpoints to it by origin, so `connectInfo.endpoint` is the
    server's origin (a sandbox's too: the workspace is in each service's path), and asks for
    tokens with its name."""
    return {
        "id": str(server.id),
        "name": server.name,
        "connectInfo": {"endpoint": server.endpoint},
        "customConnectionInfo": None,
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


def resolve_generate_cluster_token(_: object, info: GraphQLResolveInfo, **args: dict) -> dict:
    """Section 2.7: the CLI sends `Bearer undefined` when logged out, and only a message with
    `Not authorized` makes it log in again; a workspace the user is not a member of answers
    the same. The CLI fills in `*` or null for a workspace it does not know."""
    user = require_user(info)
    given = args["input"]
    workspace, name = given.get("workspaceSlug"), given.get("clusterName")
    service, stage = given.get("serviceName"), given.get("stageName")
    if not workspace or workspace == "*":
        raise GraphQLError(
            "Say which workspace the server belongs to: use an endpoint from your workspace's"
            " cluster list, <server origin>/<workspace>/<service>/<stage>.",
            extensions={"code": "workspace_required"},
        )
    if not (name and service and stage):
        raise GraphQLError(
            "clusterName, serviceName and stageName are required.",
            extensions={"code": "invalid_input"},
        )
    try:
        token = servers.cluster_token(user, workspace, name, service, stage)
    except Http404:
        raise GraphQLError(NOT_AUTHORIZED) from None
    except servers.UnknownServer as unknown:
        known = ", ".join(unknown.known) or "none yet"
        raise GraphQLError(
            f"The workspace “{workspace}” has no server named “{name}” to deploy to (its"
            f" servers: {known}).",
            extensions={"code": "unknown_cluster"},
        ) from None
    except ValueError as invalid:
        raise GraphQLError(str(invalid), extensions={"code": "invalid_input"}) from None
    return {"clusterToken": token}


schema = build_schema(SDL)
schema.query_type.fields["me"].resolve = resolve_me
schema.query_type.fields["cloudTokenRequest"].resolve = resolve_cloud_token_request
schema.mutation_type.fields["requestCloudToken"].resolve = resolve_request_cloud_token
schema.mutation_type.fields["renewToken"].resolve = resolve_renew_token
schema.mutation_type.fields["generateClusterToken"].resolve = resolve_generate_cluster_token
