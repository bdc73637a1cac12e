"""The one client of servers' management APIs (DESIGN invariant 1): every HTTP call the control
plane makes to a Prisma server, ours or a real one, goes through `ManagementClient`.

Errors come in two kinds, so callers can tell "try again later" from "the server said no":
`ServerUnreachable` (connection refused, timeout, a proxy's 502; an answer that is not the
management API's JSON is its subclass `NotManagementApi`: something else answers there) and
`PrismaError` (a GraphQL error with Prisma's `code`, e.g. 3015 for a refused token, 4000 for an
unknown service).

(The module is `management_api`, not `management`: `servers/management/` is Django's folder for
`manage.py` commands.)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings

MAX_ANSWER_BYTES = 8 * 1024 * 1024

_STEP_SELECTION = """
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
    + _STEP_SELECTION
    + "}"
)


class ManagementError(Exception):
    """A management call did not succeed."""


class ServerUnreachable(ManagementError):
    """The server could not be reached or did not answer as a management API (transient)."""


class NotManagementApi(ServerUnreachable):
    """Something answered at the address, but not as a management API: an HTML page, a 404, JSON
    without a GraphQL result (a web server, a proxy's error page, another service's port)."""


class PrismaError(ManagementError):
    """The server answered with GraphQL errors; `code` is Prisma's (3015, 4000, ...) or None."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {}
        self.code: int | None = first.get("code") if isinstance(first.get("code"), int) else None
        message = str(first.get("message", "unknown error"))
        super().__init__(f"{message} (code {self.code})" if self.code else message)


def _send(
    where: str, method: str, body: bytes | None, headers: dict[str, str], timeout: float | None
) -> tuple[int, bytes]:
    """One HTTP request to a server: its status and at most MAX_ANSWER_BYTES + 1 bytes of its
    answer (an error status still carries one: Prisma answers GraphQL errors with 200, other
    statuses may carry them too); `ServerUnreachable`, in words, when there is no answer."""
    request = urllib.request.Request(  # noqa: S310 - origins are validated http(s)
        where, data=body, headers=headers, method=method
    )
    if timeout is None:
        timeout = settings.SERVER_MANAGEMENT_TIMEOUT
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return answer.status, answer.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as error:
        return error.code, error.read(MAX_ANSWER_BYTES + 1)
    except TimeoutError:
        raise ServerUnreachable(f"{where} did not answer within {timeout} s") from None
    except urllib.error.URLError as error:
        raise ServerUnreachable(f"cannot connect to {where}: {error.reason}") from None
    except (OSError, ValueError) as error:
        raise ServerUnreachable(f"cannot connect to {where}: {error}") from None


@dataclass
class ManagementClient:
    """Calls one server's management API at `<origin>/management`, with `token` as Bearer."""

    origin: str
    token: str | None = None
    timeout: float | None = None
    # The Host header, when the server is reached at another address than its name (a private
    # server through the platform runtime's internal address).
    host: str | None = None
    # The API's path on the origin: the management API, or a service's data API (the data
    # browser's calls, `servers.data_browser`), which answers in the same GraphQL envelope.
    path: str = "/management"

    def call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.host:
            headers["Host"] = self.host
        where = f"{self.origin}{self.path}"
        status, raw = _send(where, "POST", body, headers, self.timeout)
        if len(raw) > MAX_ANSWER_BYTES:
            raise ServerUnreachable(f"{where} answered more than {MAX_ANSWER_BYTES} bytes")
        # A 5xx page is a proxy or gateway telling that what is behind it is down (transient);
        # any other answer that is not GraphQL comes from something else than a Prisma server.
        not_api = ServerUnreachable if status >= 500 else NotManagementApi
        try:
            document = json.loads(raw)
        except ValueError:
            raise not_api(f"{where} answered HTTP {status} with a body that is not JSON") from None
        if not isinstance(document, dict):
            raise not_api(f"{where} answered HTTP {status} without a GraphQL result")
        errors = document.get("errors")
        if errors:
            raise PrismaError(errors if isinstance(errors, list) else [{"message": str(errors)}])
        data = document.get("data")
        if status >= 400 or not isinstance(data, dict):
            raise not_api(f"{where} answered HTTP {status} without data")
        return data

    def server_info(self) -> dict[str, Any]:
        return self.call("{ serverInfo { version } }")["serverInfo"]

    def list_projects(self, *, storage: bool = False) -> list[dict[str, Any]]:
        """The projects the token may see; with `storage`, each one's `storageBytes` (our
        runtime's extension: a server that does not know it is asked again without it)."""
        if storage:
            try:
                return self.call("{ listProjects { name stage storageBytes } }")["listProjects"]
            except PrismaError as error:
                if "storageBytes" not in str(error):
                    raise
        return self.call("{ listProjects { name stage } }")["listProjects"]

    def add_project(self, name: str, stage: str, secrets: list[str] | None = None) -> None:
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
        *,
        secrets: list[str] | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> dict[str, Any]:
        """The deploy payload: `errors`, `warnings`, `migration` (None when nothing changes)."""
        variables = {"name": name, "stage": stage, "types": types, "secrets": secrets}
        variables.update({"dryRun": dry_run, "force": force})
        return self.call(DEPLOY, variables)["deploy"]

    def migration_status(self, name: str, stage: str) -> dict[str, Any]:
        return self.call(
            "query($name: String!, $stage: String!) { migrationStatus(name: $name, stage: $stage)"
            " { projectId revision status applied rolledBack errors } }",
            {"name": name, "stage": stage},
        )["migrationStatus"]

    def list_migrations(
        self, name: str, stage: str, *, details: bool = False
    ) -> list[dict[str, Any]]:
        """Every migration, newest first; with `details`, each one's datamodel and steps."""
        fields = "revision status applied rolledBack errors startedAt finishedAt"
        if details:
            fields += " datamodel steps { ...Step }"
        query = (
            "query($name: String!, $stage: String!) { listMigrations(name: $name, stage: $stage)"
            f" {{ {fields} }} }}"
        )
        if details:
            query += " fragment Step on MigrationStep {" + _STEP_SELECTION + "}"
        return self.call(query, {"name": name, "stage": stage})["listMigrations"]

    def delete_project(self, name: str, stage: str) -> None:
        self.call(
            "mutation($input: DeleteProjectInput!) { deleteProject(input: $input)"
            " { clientMutationId } }",
            {"input": {"name": name, "stage": stage}},
        )

    # Refract's usage fields (`runtime.usage`); a real Prisma server has neither.

    def service_usage(self, name: str, stage: str, window: str) -> dict[str, Any]:
        """A service's usage over `window` (hour, day, week): series, throttling, operations."""
        query = (
            "query($name: String!, $stage: String!, $window: String!) "
            "{ serviceUsage(name: $name, stage: $stage, window: $window) }"
        )
        data = self.call(query, {"name": name, "stage": stage, "window": window})
        usage = data.get("serviceUsage")
        if not isinstance(usage, dict):
            raise NotManagementApi(f"{self.origin}/management answered serviceUsage without data")
        return usage

    def usage_summary(self, services: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Requests (24 h), throttling (1 h) and storage of several services, in one call."""
        query = "query($services: [UsageServiceInput!]!) { usageSummary(services: $services) }"
        refs = [{"name": name, "stage": stage} for name, stage in services]
        found = self.call(query, {"services": refs}).get("usageSummary")
        if not isinstance(found, list) or len(found) != len(services):
            raise NotManagementApi(f"{self.origin}/management answered usageSummary without data")
        return found


class OperatorError(ManagementError):
    """The platform runtime's operator API refused a request: `status` is the HTTP status,
    `field` the input it named on a 400."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        self.status, self.field = status, field
        super().__init__(message)


@dataclass
class OperatorClient:
    """Calls the platform runtime's operator API (`<origin>/_operator/servers/...`), which adds
    and removes the private servers it serves; `token` is an operator token (RS256, signed with
    the platform's key, audience `refract-operator`: `tokens.operator_token`)."""

    origin: str
    token: str
    timeout: float | None = None

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        where = f"{self.origin}{path}"
        status, raw = _send(where, method, data, headers, self.timeout)
        try:
            document = json.loads(raw[:MAX_ANSWER_BYTES])
        except ValueError:
            raise ServerUnreachable(
                f"{where} answered HTTP {status} with a body that is not JSON"
            ) from None
        if not isinstance(document, dict):
            raise ServerUnreachable(f"{where} answered HTTP {status} without a JSON object")
        return status, document

    def _refused(self, status: int, document: dict[str, Any]) -> OperatorError:
        message = str(document.get("error") or f"HTTP {status}")
        return OperatorError(status, message, str(document.get("field") or ""))

    def put_server(
        self,
        name: str,
        *,
        hosts: list[str],
        database: dict[str, Any],
        management_public_key: str,
    ) -> dict[str, Any]:
        """Create or replace a server; answers its entry (without the password)."""
        body = {"hosts": hosts, "database": database, "managementPublicKey": management_public_key}
        status, document = self._request("PUT", f"/_operator/servers/{name}", body)
        if status == 404:  # a runtime without `operator` in its config answers 404 to all
            raise OperatorError(404, f"{self.origin} has no operator API (`operator` is not set)")
        if status not in (200, 201):
            raise self._refused(status, document)
        return document

    def get_server(self, name: str) -> dict[str, Any] | None:
        status, document = self._request("GET", f"/_operator/servers/{name}")
        if status == 404:
            return None
        if status != 200:
            raise self._refused(status, document)
        return document

    def list_servers(self) -> list[dict[str, Any]]:
        status, document = self._request("GET", "/_operator/servers")
        if status != 200:
            raise self._refused(status, document)
        return list(document.get("servers") or [])

    def delete_server(self, name: str) -> bool:
        """Remove a server; False when the runtime did not have it (already removed)."""
        status, document = self._request("DELETE", f"/_operator/servers/{name}")
        if status == 404:
            return False
        if status != 200:
            raise self._refused(status, document)
        return True
