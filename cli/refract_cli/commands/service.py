"""`refract info`, `token`, `delete` and `init`: the service of prisma.yml."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import questionary

from refract_cli.console import Console
from refract_cli.context import (
    State,
    emit_json,
    interactive,
    json_option,
    out,
    pass_state,
    project_option,
)
from refract_cli.deploying import (
    find_service,
)
from refract_cli.errors import CliError
from refract_cli.project import Project, find_project
from refract_cli.targets import (
    DirectTarget,
    WorkspaceTarget,
    resolve,
)
from refract_cli.tokens import service_token


def _target(state: State, project: Project) -> DirectTarget | WorkspaceTarget:
    target = resolve(project, state.registry, state.console())
    if target is None:
        raise CliError(
            f"{project.path} names no server.",
            hint="Set `cluster:` (see `refract servers`), or run `refract deploy` to choose one.",
            code="no_cluster",
        )
    return target


@click.command()
@json_option
@project_option
@pass_state
def info(state: State, as_json: bool, project_file: str | None) -> None:
    """The service of prisma.yml: its server, endpoint, status and revision."""
    project = Project(find_project(project_file))
    target = _target(state, project)
    if isinstance(target, WorkspaceTarget):
        service = find_service(state.console(), target)
        body: dict[str, Any] = {
            "cluster": target.cluster,
            "kind": target.server["kind"],
            "service": target.service,
            "stage": target.stage,
            "endpoint": service["endpoint"] if service else target.endpoint,
            "deployed": service is not None,
            "status": service["status"] if service else "not deployed",
            "revision": service.get("revision") if service else None,
            "protected": service.get("protected") if service else None,
            "id": service["id"] if service else None,
        }
    else:
        management = target.management()
        version = management.server_info().get("version")
        found = management.project(target.project_name, target.stage)
        body = {
            "cluster": target.name,
            "kind": "registry" if state.registry.cluster(target.name) else "endpoint",
            "service": target.service,
            "stage": target.stage,
            "endpoint": target.endpoint,
            "deployed": found is not None,
            "status": "live" if found else "not deployed",
            "server_version": version,
        }
    if as_json:
        emit_json(body)
        return
    for key, value in body.items():
        if value is not None:
            out.print(f"{key}: {value}")


@click.command()
@json_option
@project_option
@pass_state
def token(state: State, as_json: bool, project_file: str | None) -> None:
    """A service token (7 days) for the service's API."""
    project = Project(find_project(project_file))
    target = _target(state, project)
    if isinstance(target, WorkspaceTarget):
        console = state.console()
        service = find_service(console, target)
        if service is None:
            raise CliError(
                f"{target.service}/{target.stage} is not deployed on {target.cluster}.",
                hint="Run `refract deploy` first.",
            )
        if not service.get("protected"):
            raise CliError(
                f"{target.service}/{target.stage} has no secret: its API needs no token.",
                code="no_secret",
            )
        value = console.post(f"workspaces/{target.workspace}/services/{service['id']}/token")[
            "token"
        ]
    else:
        if not project.secret:
            raise CliError(
                f"There is no secret set in {project.path}.",
                hint="Set `secret:` (the service's API then wants a token).",
                code="no_secret",
            )
        value = service_token(project.secret, target.service, target.stage)
    if as_json:
        emit_json({"token": value})
    else:
        click.echo(value)


@click.command()
@click.option("--force", "-f", is_flag=True, help="Do not ask.")
@json_option
@project_option
@pass_state
def delete(state: State, force: bool, as_json: bool, project_file: str | None) -> None:
    """Delete the service of prisma.yml (its data too) on its server."""
    project = Project(find_project(project_file))
    target = _target(state, project)
    where = target.cluster if isinstance(target, WorkspaceTarget) else target.name
    label = f"{target.service}/{target.stage} on {where}"
    if not force:
        if not interactive():
            raise CliError(
                f"Deleting {label} needs a confirmation.",
                hint="Run `refract delete --force` (no terminal to ask).",
                code="confirmation_needed",
            )
        if not questionary.confirm(f"Delete {label} and all its data?", default=False).ask():
            raise CliError("Nothing deleted.", code="aborted")
    if isinstance(target, WorkspaceTarget):
        console = state.console()
        service = find_service(console, target)
        if service is None:
            raise CliError(f"{label} does not exist.", code="not_found")
        console.call("DELETE", f"workspaces/{target.workspace}/services/{service['id']}")
        status = _await_deleted(console, target.workspace, service["id"])
    else:
        target.management().delete_project(target.project_name, target.stage)
        status = "deleted"
    if status != "deleted":
        raise CliError(f"Deleting {label} did not finish: {status}", code="delete_failed")
    if as_json:
        emit_json({"deleted": True, "service": target.service, "stage": target.stage})
    else:
        out.print(f"Deleted {label}.")


def _await_deleted(console: Console, workspace: str, service_id: str, wait: float = 60) -> str:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status, service = console.call(
            "GET", f"workspaces/{workspace}/services/{service_id}", expect=(200, 404)
        )
        if status == 404:
            return "deleted"
        if service["status"] == "delete_failed":
            return f"delete failed: {service.get('status_reason')}"
        time.sleep(0.5)
    return "still deleting (the console goes on: see its Services tab)"


@click.command()
@click.option("--starter", help="The starter datamodel (see the list without a terminal).")
@click.option("--service", "service_name", help="The service name (default: this folder's).")
@click.option("--cluster", help="Write `cluster:` too (a name from `refract servers`).")
@pass_state
def init(state: State, starter: str | None, service_name: str | None, cluster: str | None) -> None:
    """Create prisma.yml and a starter datamodel from the console's templates."""
    target_yml, target_model = Path("prisma.yml"), Path("datamodel.prisma")
    for existing in (target_yml, target_model):
        if existing.exists():
            raise CliError(f"{existing} already exists here: nothing written.")
    console = state.console()
    starters = console.call("GET", "starters", auth=False)[1]
    keys = [s["key"] for s in starters]
    if starter is None:
        if not interactive():
            raise CliError(
                "Which starter? There is no terminal to ask.",
                hint=f"Pass --starter, one of: {', '.join(keys)}.",
                code="starter_needed",
            )
        starter = questionary.select(
            "Starter datamodel:",
            choices=[
                questionary.Choice(f"{s['title']}: {s['description']}", s["key"]) for s in starters
            ],
        ).ask()
        if starter is None:
            raise CliError("No starter chosen.", code="aborted")
    chosen = next((s for s in starters if s["key"] == starter), None)
    if chosen is None:
        raise CliError(f"Unknown starter {starter!r}.", hint=f"One of: {', '.join(keys)}.")
    name = (
        service_name
        or "".join(c if c.isalnum() or c in "-_" else "-" for c in Path.cwd().name).strip("-_")
        or "hello"
    )
    if not name[0].isalpha():
        name = f"s{name}"
    lines = [
        "# The service and its stage: its endpoint is <server>/<service>/<stage>.",
        f"service: {name}",
        "stage: dev",
    ]
    if cluster:
        lines.append(f"cluster: {cluster}")
    else:
        lines.append("# cluster: the server (`refract servers`); `refract deploy` asks, writes it.")
    lines += [
        "datamodel: datamodel.prisma",
        "# secret: ${env:PRISMA_SERVICE_SECRET}   # protects the service's API with tokens",
    ]
    target_model.write_text(chosen["datamodel"], encoding="utf-8")
    target_yml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out.print(f"Wrote {target_yml} and {target_model} ({chosen['title']}). Next: `refract deploy`.")
