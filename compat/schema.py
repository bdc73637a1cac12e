"""The cloud API the Prisma 1 CLI talks to (`CLOUD_API_ENDPOINT`), as a real GraphQL schema.

Resolvers are thin: they call the accounts services, as the REST API does. The façade owns no
models. Field names and shapes follow shared/reference/prisma1-cli-protocol.md sections 2 and 9.
"""

from dataclasses import dataclass

from django.http import HttpRequest
from graphql import GraphQLError, GraphQLResolveInfo, build_schema

from accounts import audit, cli_login, session_keys
from accounts.models import Membership, SessionKey, User

SDL = """
type Query {
  me: User
  cloudTokenRequest(secret: String!): CloudTokenRequest
}

type Mutation {
  requestCloudToken: CloudTokenRequest!
  renewToken: String
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
                    # Servers and services arrive with the servers issue.
                    "clusters": [],
                    "services": [],
                },
            }
            for m in memberships
        ],
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


schema = build_schema(SDL)
schema.query_type.fields["me"].resolve = resolve_me
schema.query_type.fields["cloudTokenRequest"].resolve = resolve_cloud_token_request
schema.mutation_type.fields["requestCloudToken"].resolve = resolve_request_cloud_token
schema.mutation_type.fields["renewToken"].resolve = resolve_renew_token
