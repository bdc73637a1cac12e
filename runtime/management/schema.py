"""The management API's GraphQL schema (reference `management.graphql`) with its resolvers bound.

The SDL is Prisma's, field for field: the CLI introspects it and only asks for `steps`,
`CreateRelation.after` and `noMigration` when they exist, so every optional field is present.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLSchema, build_schema

from runtime.management import operations, usage
from runtime.management.deploy import deploy

SDL = """
schema { query: Query mutation: Mutation }

type Query {
  "The next migration in line to be applied to the project, else the last applied one."
  migrationStatus(name: String!, stage: String!): Migration!
  "Shows all projects the caller has access to."
  listProjects: [Project!]!
  "Shows all migrations for the project. Debug query, will likely be removed in the future."
  listMigrations(name: String!, stage: String!): [Migration!]!
  "Gets a project by name and stage."
  project(name: String!, stage: String!): Project!
  "Information about the server"
  serverInfo: ServerInfo!
  "generates a token for the given project"
  generateProjectToken(name: String!, stage: String!): String!
  "Refract extension: a service's usage over a window (hour, day or week)."
  serviceUsage(name: String!, stage: String!, window: String!): Json
  "Refract extension: requests (24 h), throttling (1 h) and storage of several services."
  usageSummary(services: [UsageServiceInput!]!): Json
}

type Mutation {
  deploy(input: DeployInput!): DeployPayload
  addProject(input: AddProjectInput!): AddProjectPayload
  deleteProject(input: DeleteProjectInput!): DeleteProjectPayload
  setCloudSecret(input: SetCloudSecretInput!): SetCloudSecretPayload
}

scalar DateTime
"Refract extension: any JSON value."
scalar Json

input UsageServiceInput {
  name: String!
  stage: String!
}

input DeployInput {
  name: String!
  stage: String!
  types: String!
  dryRun: Boolean
  secrets: [String!]
  subscriptions: [FunctionInput!]
  force: Boolean
  noMigration: Boolean
  clientMutationId: String
}

input FunctionInput {
  name: String!
  query: String!
  url: String!
  headers: [HeaderInput!]!
}

input HeaderInput {
  name: String!
  value: String!
}

type DeployPayload {
  errors: [SchemaError!]!
  migration: Migration
  warnings: [SchemaWarning!]!
  steps: [MigrationStep!]!
  clientMutationId: String
}

input AddProjectInput {
  name: String!
  stage: String!
  secrets: [String!]
  clientMutationId: String
}

type AddProjectPayload {
  project: Project
  clientMutationId: String
}

input DeleteProjectInput {
  name: String!
  stage: String!
  clientMutationId: String
}

type DeleteProjectPayload {
  project: Project
  clientMutationId: String
}

input SetCloudSecretInput {
  secret: String
  clientMutationId: String
}

type SetCloudSecretPayload {
  clientMutationId: String
}

"This is a project"
type Project {
  name: String!
  stage: String!
  datamodel: String!
  "Refract extension: bytes the service stores (tables, indexes, TOAST), as its cap counts."
  storageBytes: Float
}

"Information about the deployed server"
type ServerInfo {
  version: String!
  commit: String!
  primaryConnector: String!
}

"An error that occurred while validating the schema."
type SchemaError {
  type: String!
  field: String
  description: String!
}

"A warning created while validating the schema against existing data."
type SchemaWarning {
  type: String!
  field: String
  description: String!
}

"This is a migration"
type Migration {
  projectId: String!
  revision: Int!
  status: String!
  applied: Int!
  rolledBack: Int!
  errors: [String!]!
  startedAt: DateTime
  finishedAt: DateTime
  datamodel: String!
  steps: [MigrationStep!]!
}

"This is a migration step."
interface MigrationStep {
  type: String!
}

type CreateModel implements MigrationStep { name: String! type: String! }
type DeleteModel implements MigrationStep { name: String! type: String! }
type UpdateModel implements MigrationStep {
  name: String!
  newName: String!
  isEmbedded: Boolean
  type: String!
}
type CreateEnum implements MigrationStep { name: String! values: [String!]! type: String! }
type DeleteEnum implements MigrationStep { name: String! type: String! }
type UpdateEnum implements MigrationStep {
  name: String!
  newName: String
  values: [String!]
  type: String!
}
type CreateField implements MigrationStep {
  model: String!
  name: String!
  typeName: String!
  isRequired: Boolean!
  isList: Boolean!
  unique: Boolean!
  enum: String
  default: String
  relation: String
  type: String!
}
type UpdateField implements MigrationStep {
  model: String!
  name: String!
  newName: String
  typeName: String
  isRequired: Boolean
  isList: Boolean
  unique: Boolean
  enum: String
  default: String
  relation: String
  type: String!
}
type DeleteField implements MigrationStep { model: String! name: String! type: String! }
type CreateRelation implements MigrationStep {
  name: String!
  leftModel: String!
  rightModel: String!
  after: RelationManifestation!
  type: String!
}
type UpdateRelation implements MigrationStep {
  name: String!
  newName: String
  before: RelationManifestation!
  after: RelationManifestation!
  type: String!
}
type DeleteRelation implements MigrationStep { name: String! type: String! }
type UpdateSecrets implements MigrationStep { message: String! type: String! }

"This stores details about how a relation is manifested in the underlying database."
interface RelationManifestation {
  type: String!
}

"This is a link table."
type LinkTable implements RelationManifestation {
  table: String!
  modelAColumn: String!
  modelBColumn: String!
  idColumn: String
  type: String!
}

"This is an inline manifestation."
type Inline implements RelationManifestation {
  model: String!
  column: String!
  type: String!
}
"""


def _resolve_type_by_key(value: Any, *_: Any) -> str:
    return value["type"]


def build_management_schema() -> GraphQLSchema:
    schema = build_schema(SDL)
    schema.type_map["MigrationStep"].resolve_type = _resolve_type_by_key  # type: ignore[attr-defined]
    schema.type_map["RelationManifestation"].resolve_type = _resolve_type_by_key  # type: ignore[attr-defined]
    query = schema.query_type
    mutation = schema.mutation_type
    assert query is not None and mutation is not None
    schema.type_map["Project"].fields["storageBytes"].resolve = operations.storage_bytes  # type: ignore[attr-defined]
    queries = {
        **operations.QUERIES,
        "serviceUsage": usage.service_usage,
        "usageSummary": usage.usage_summary,
    }
    for name, resolver in queries.items():
        query.fields[name].resolve = resolver
    for name, resolver in {**operations.MUTATIONS, "deploy": deploy}.items():
        mutation.fields[name].resolve = resolver
    return schema
