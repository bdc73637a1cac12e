"""A server's management API (`<origin>/management`, protocol reference 6), for servers of the
local registry and `endpoint:` URLs: the CLI calls it directly, with a token it signs."""

from __future__ import annotations

from typing import Any

from refract_cli.errors import CliError
from refract_cli.transport import Unreachable, request_json

STEP = """
  type
  __typename
  ... on CreateEnum { name ce_values: values }
  ... on CreateField { model name cf_typeName: typeName cf_isRequired: isRequired
                       cf_isList: isList cf_isUnique: unique cf_relation: relation
                       cf_defaultValue: default cf_enum: enum }
  ... on CreateModel { name }
  ... on CreateRelation { name leftModel rightModel }
  ... on DeleteEnum { name }
  ... on DeleteField { model name }
  ... on DeleteModel { name }
  ... on DeleteRelation { name }
  ... on UpdateEnum { name newName values }
  ... on UpdateField { model name newName typeName isRequired isList isUnique: unique
                       relation default enum }
  ... on UpdateModel { name um_newName: newName }
"""

DEPLOY = (
    """
mutation($name: String!, $stage: String!, $types: String!, $dryRun: Boolean,
         $secrets: [String!], $force: Boolean) {
  deploy(input: {name: $name, stage: $stage, types: $types, dryRun: $dryRun,
                 secrets: $secrets, force: $force}) {
    errors { type field description }
    warnings { type field description }
    migration { revision steps { ...Step } }
    steps { ...Step }
  }
}
fragment Step on MigrationStep {"""
    + STEP
    + "}"
)

TOKEN_REFUSED = 3015


class ServerError(CliError):
    """The server answered with a GraphQL error (Prisma's `code`)."""

    def __init__(self, message: str, prisma_code: int | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.prisma_code = prisma_code


class Management:
    def __init__(
        self,
        origin: str,
        name: str,
        token: str = "",
        refused_hint: str = "",
        timeout: float = 60,
    ) -> None:
        self.origin, self.name, self.token = origin.rstrip("/"), name, token
        self.refused_hint, self.timeout = refused_hint, timeout

    def call(self, query: str, variables: dict[str, Any] | None = None, *, auth: bool = True):
        url = f"{self.origin}/management"
        try:
            status, answer = request_json(
                "POST",
                url,
                {"query": query, "variables": variables or {}},
                token=self.token if auth else "",
                timeout=self.timeout,
            )
        except Unreachable as error:
            raise CliError(
                f"The server {self.name} cannot be reached ({error}).",
                hint="Check that it runs and that its address in the registry is right"
                " (`refract servers`).",
                code="server_unreachable",
            ) from None
        if not isinstance(answer, dict):
            raise CliError(f"{url} answered HTTP {status} without a GraphQL result.")
        errors = answer.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else {}
            code = first.get("code") if isinstance(first.get("code"), int) else None
            message = str(first.get("message", errors))
            if code == TOKEN_REFUSED:
                raise ServerError(
                    f"The server {self.name} refused the token: {message}",
                    code,
                    hint=self.refused_hint,
                    code="token_refused",
                )
            raise ServerError(f"The server {self.name} answered: {message}", code)
        data = answer.get("data")
        if not isinstance(data, dict):
            raise CliError(f"{url} answered HTTP {status} without data.")
        return data

    def server_info(self) -> dict[str, Any]:
        return self.call("{ serverInfo { version } }", auth=False)["serverInfo"]

    def project(self, name: str, stage: str) -> dict[str, Any] | None:
        try:
            return self.call(
                "query($name: String!, $stage: String!) { project(name: $name, stage: $stage)"
                " { name stage } }",
                {"name": name, "stage": stage},
            )["project"]
        except ServerError as error:
            if error.prisma_code == TOKEN_REFUSED:
                raise
            return None

    def add_project(self, name: str, stage: str, secrets: list[str] | None) -> None:
        self.call(
            "mutation($name: String!, $stage: String!, $secrets: [String!]) {"
            " addProject(input: {name: $name, stage: $stage, secrets: $secrets})"
            " { project { name stage } } }",
            {"name": name, "stage": stage, "secrets": secrets},
        )

    def deploy(
        self,
        name: str,
        stage: str,
        types: str,
        secrets: list[str] | None,
        *,
        dry_run: bool,
        force: bool,
    ) -> dict[str, Any]:
        variables = {"name": name, "stage": stage, "types": types, "secrets": secrets}
        variables.update({"dryRun": dry_run, "force": force})
        return self.call(DEPLOY, variables)["deploy"]

    def migration_status(self, name: str, stage: str) -> dict[str, Any]:
        return self.call(
            "query($name: String!, $stage: String!) { migrationStatus(name: $name, stage: $stage)"
            " { projectId revision status applied rolledBack errors } }",
            {"name": name, "stage": stage},
        )["migrationStatus"]

    def delete_project(self, name: str, stage: str) -> None:
        self.call(
            "mutation($input: DeleteProjectInput!) { deleteProject(input: $input)"
            " { clientMutationId } }",
            {"input": {"name": name, "stage": stage}},
        )
