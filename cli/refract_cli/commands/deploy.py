"""`refract deploy`: resolve the server (asking when prisma.yml names none), deploy, report."""

from __future__ import annotations

import click
import questionary

from refract_cli.commands.servers import all_choices
from refract_cli.context import (
    State,
    emit_json,
    err,
    interactive,
    json_option,
    out,
    pass_state,
    project_option,
)
from refract_cli.deploying import (
    Outcome,
    Progress,
    deploy_direct,
    deploy_to_workspace,
    describe_message,
    describe_step,
)
from refract_cli.errors import CliError
from refract_cli.project import Project, find_project
from refract_cli.targets import (
    WorkspaceTarget,
    resolve,
)


def _choose(state: State, project: Project) -> str:
    choices, note = all_choices(state, probe=False)
    names = ", ".join(c.cluster for c in choices) or "none"
    if not interactive():
        raise CliError(
            f"{project.path} has no `cluster` (nor `endpoint`), and there is no terminal to ask.",
            hint=f"Set `cluster:` in prisma.yml to one of: {names}.",
            code="no_cluster",
        )
    if not choices:
        raise CliError(
            "There is no server to deploy to.",
            hint="Add one with `refract servers add NAME URL`, or log in (`refract login`).",
            code="no_cluster",
        )
    if note:
        err.print(note)
    width = max(len(c.cluster) for c in choices)
    options = []
    for choice in choices:
        title = f"{choice.cluster.ljust(width)}  {choice.kind:<11}  {choice.endpoint}"
        disabled = None
        if choice.source == "workspace" and choice.status not in {"healthy", "unreachable"}:
            disabled = choice.status
        options.append(questionary.Choice(title, value=choice.cluster, disabled=disabled))
    picked = questionary.select("Where do you want to deploy?", choices=options).ask()
    if picked is None:
        raise CliError("No server chosen.", code="aborted")
    return picked


def _report(outcome: Outcome, as_json: bool, force: bool) -> None:
    if as_json:
        emit_json(outcome.as_dict())
    else:
        if outcome.steps:
            title = "Changes (dry run):" if outcome.status == "dry_run" else "Changes:"
            out.print(title)
            for step in outcome.steps:
                out.print(f"  {describe_step(step)}")
        if outcome.errors:
            out.print("[red]Errors:[/]")
            for message in outcome.errors:
                out.print(f"  ✖ {describe_message(message)}")
        if outcome.warnings:
            out.print("[yellow]Warnings:[/]")
            for message in outcome.warnings:
                out.print(f"  ⚠ {describe_message(message)}")
        if outcome.status == "up_to_date":
            out.print("Service is already up to date.")
        elif outcome.status == "dry_run":
            out.print("Dry run: nothing was changed." if outcome.steps else "There are no changes.")
        elif outcome.status == "succeeded":
            revision = f" (revision {outcome.revision})" if outcome.revision else ""
            out.print(f"Deployed {outcome.service}/{outcome.stage} to {outcome.cluster}{revision}.")
        if outcome.status in {"succeeded", "up_to_date"}:
            out.print(f"Endpoint: {outcome.endpoint}")
            if outcome.service_token:
                out.print(
                    "The console keeps this service's secret (prisma.yml's `secret` only asked"
                    " for one); its token (7 days, shown once):\n"
                    f"{outcome.service_token}\n(later: `refract token`)"
                )
    if outcome.status in {"succeeded", "up_to_date", "dry_run"}:
        return
    if outcome.warnings and not outcome.errors and not force:
        raise CliError(
            "Deploy stopped: the server warns that it would lose data.",
            hint="Run `refract deploy --force` to accept these changes.",
            code="destructive_changes",
        )
    if outcome.errors:
        raise CliError(
            "Deploy failed: the datamodel has errors (above).",
            hint="Fix them in the datamodel and deploy again.",
            code="datamodel_errors",
        )
    raise CliError(f"Deploy {outcome.status}: {outcome.reason}", code="deploy_failed")


@click.command()
@click.option("--force", "-f", is_flag=True, help="Accept destructive changes (data loss).")
@click.option("--dry-run", "-d", is_flag=True, help="Show the changes; apply nothing.")
@json_option
@project_option
@pass_state
def deploy(
    state: State, force: bool, dry_run: bool, as_json: bool, project_file: str | None
) -> None:
    """Deploy the datamodel to the server of prisma.yml's `cluster` (or `endpoint`); without
    one, choose a server and have it written into prisma.yml."""
    project = Project(find_project(project_file))
    console = state.console()
    target = resolve(project, state.registry, console)
    if target is None:
        project.service_stage()  # a project without a service cannot deploy anywhere
        project.datamodel()
        chosen = _choose(state, project)
        project.write_cluster(chosen)
        err.print(f"Wrote `cluster: {chosen}` to {project.path}: the next deploy goes there.")
        target = resolve(project, state.registry, console)
        assert target is not None
    with Progress(enabled=not as_json) as progress:
        if isinstance(target, WorkspaceTarget):
            outcome = deploy_to_workspace(
                console, target, project, force=force, dry_run=dry_run, progress=progress
            )
        else:
            outcome = deploy_direct(
                target, project, force=force, dry_run=dry_run, progress=progress
            )
    _report(outcome, as_json, force)
