"""Where a command goes: a server of the local registry (called directly, with a token signed
here) or a server of one of the user's workspaces (through the console's REST API).

The name in `cluster:` is a registry key or `<workspace>/<server>`. With `endpoint:` the
origin decides, and a secret the user gave explicitly always wins over the session key: a
registry entry with that host, then PRISMA_MANAGEMENT_API_SECRET, and only then a workspace
server of that address (so being logged in never breaks deploys to a self-hosted server).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from refract_cli.console import Console
from refract_cli.errors import CliError
from refract_cli.management import Management
from refract_cli.project import Project, parse_endpoint
from refract_cli.registry import ClusterEntry, Registry, keys_dir
from refract_cli.tokens import ManagementCredential, credential_from_secret

KIND_LABELS = {"sandbox": "sandbox", "private": "private", "self_hosted": "self-hosted"}


@dataclass
class DirectTarget:
    """A server the CLI calls itself: a registry entry, or an `endpoint:` origin."""

    name: str
    origin: str
    credential: ManagementCredential | None
    service: str
    stage: str
    workspace: str | None = None  # in an endpoint's path: the project is `<ws>~<service>`

    @property
    def project_name(self) -> str:
        return f"{self.workspace}~{self.service}" if self.workspace else self.service

    @property
    def endpoint(self) -> str:
        prefix = f"{self.origin}/{self.workspace}" if self.workspace else self.origin
        return f"{prefix}/{self.service}/{self.stage}"

    def management(self, target: str | None = None) -> Management:
        token = ""
        if self.credential:
            token = self.credential.sign(target or f"{self.project_name}/{self.stage}")
        hint = (
            f"The key from {self.credential.source} is not the one the server trusts: configure"
            " the server with its public key (`refract servers add` printed it), or fix"
            " clusterSecret in ~/.prisma/config.yml."
            if self.credential
            else f"The server {self.name} is secured: add it with its key"
            " (`refract servers add`), or set PRISMA_MANAGEMENT_API_SECRET."
        )
        return Management(self.origin, self.name, token, refused_hint=hint)


@dataclass
class WorkspaceTarget:
    """A server of one of the user's workspaces: deploys go through the console."""

    workspace: str
    server: dict[str, Any]
    service: str
    stage: str

    @property
    def cluster(self) -> str:
        return f"{self.workspace}/{self.server['name']}"

    @property
    def endpoint(self) -> str:
        return f"{self.server['endpoint']}/{self.service}/{self.stage}"


@dataclass
class ServerChoice:
    """One line of `refract servers` and of the interactive selection."""

    cluster: str
    kind: str
    source: str  # "registry" or "workspace"
    endpoint: str
    status: str = ""
    version: str = ""
    workspace: str | None = None
    server: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "kind": self.kind,
            "source": self.source,
            "endpoint": self.endpoint,
            "status": self.status,
            "version": self.version,
            "workspace": self.workspace,
            "id": self.server.get("id"),
        }


def env_credential() -> ManagementCredential | None:
    secret = os.environ.get("PRISMA_MANAGEMENT_API_SECRET", "")
    if not secret:
        return None
    return ManagementCredential("hs256", secret, "PRISMA_MANAGEMENT_API_SECRET")


def entry_credential(entry: ClusterEntry) -> ManagementCredential | None:
    given = credential_from_secret(entry.secret, f"registry entry {entry.name!r}")
    return given or env_credential()


def registry_choices(registry: Registry, probe: bool) -> list[ServerChoice]:
    choices = []
    for entry in registry.clusters():
        choice = ServerChoice(entry.name, "self-hosted", "registry", entry.host)
        if probe:
            try:
                # A listing waits a few seconds per server, not a deploy's minute.
                info = Management(entry.host, entry.name, timeout=5).server_info()
                choice.status, choice.version = "healthy", str(info.get("version") or "")
            except CliError:
                choice.status = "unreachable"
        choices.append(choice)
    return choices


def workspace_choices(console: Console) -> list[ServerChoice]:
    choices = []
    for membership in console.me()["workspaces"]:
        slug = membership["slug"]
        for server in console.servers(slug):
            choices.append(
                ServerChoice(
                    cluster=f"{slug}/{server['name']}",
                    kind=KIND_LABELS.get(server["kind"], server["kind"]),
                    source="workspace",
                    endpoint=server["endpoint"],
                    status=server["status"],
                    version=server.get("version") or "",
                    workspace=slug,
                    server=server,
                )
            )
    return choices


def _workspace_server(console: Console, workspace: str, name: str) -> dict[str, Any] | None:
    me = console.me()
    if workspace not in {m["slug"] for m in me["workspaces"]}:
        return None
    return next((s for s in console.servers(workspace) if s["name"] == name), None)


def known_names(registry: Registry, console: Console) -> list[str]:
    names = [entry.name for entry in registry.clusters()]
    if console.session_key:
        with contextlib.suppress(CliError):
            names += [c.cluster for c in workspace_choices(console)]
    return names


def unknown_cluster(name: str, registry: Registry, console: Console) -> CliError:
    known = known_names(registry, console)
    listed = ", ".join(known) if known else "none (add one with `refract servers add`)"
    login = (
        "" if console.session_key else " Log in (`refract login`) to use your workspaces' servers."
    )
    key_file = keys_dir() / f"{name}.pem"
    if key_file.exists():
        login += (
            f" Its key is still in {key_file} (`prisma1 login` and `logout` rewrite the registry"
            f" without refract's entries): `refract servers add {name} URL --key-file {key_file}`."
        )
    return CliError(
        f"Unknown cluster {name!r} in prisma.yml. Known: {listed}.",
        hint="Set `cluster:` to one of them (see `refract servers`)." + login,
        code="unknown_cluster",
    )


def resolve_cluster(
    name: str, service: str, stage: str, registry: Registry, console: Console
) -> DirectTarget | WorkspaceTarget:
    entry = registry.cluster(name)
    if entry is not None:
        return DirectTarget(entry.name, entry.host, entry_credential(entry), service, stage)
    if "/" in name:
        workspace, _, server_name = name.partition("/")
        if not console.session_key:
            raise CliError(
                f"cluster {name!r} is a workspace server: you need to be logged in.",
                hint="Run `refract login`, or `refract login --key KEY` in CI.",
                code="not_logged_in",
            )
        server = _workspace_server(console, workspace, server_name)
        if server is not None:
            return WorkspaceTarget(workspace, server, service, stage)
    raise unknown_cluster(name, registry, console)


def resolve_endpoint(
    endpoint: str, registry: Registry, console: Console
) -> DirectTarget | WorkspaceTarget:
    parsed = parse_endpoint(endpoint)
    for entry in registry.clusters():
        if entry.host.lower() == parsed.origin.lower():
            credential = entry_credential(entry)
            return DirectTarget(
                entry.name, parsed.origin, credential, parsed.service, parsed.stage,
                parsed.workspace,
            )  # fmt: skip
    credential = env_credential()
    if credential is None and console.session_key:
        for choice in workspace_choices(console):
            if choice.endpoint.rstrip("/").lower() == parsed.service_origin.lower():
                return WorkspaceTarget(
                    choice.workspace or "", choice.server, parsed.service, parsed.stage
                )
    return DirectTarget(
        parsed.origin, parsed.origin, credential, parsed.service, parsed.stage, parsed.workspace
    )


def resolve(
    project: Project, registry: Registry, console: Console
) -> DirectTarget | WorkspaceTarget | None:
    """The project's server, or None when prisma.yml names none (the caller may ask)."""
    if project.cluster:
        service, stage = project.service_stage()
        return resolve_cluster(project.cluster, service, stage, registry, console)
    if project.endpoint:
        return resolve_endpoint(project.endpoint, registry, console)
    return None
