"""`refract deploy`: to a workspace server through the console (a Deploy a worker runs, in the
console's history), or to a registry server through its management API with a token signed
here. Both end the same way: the steps, the server's warnings and errors, the endpoint."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console as Terminal
from rich.live import Live
from rich.text import Text

from refract_cli.console import Console
from refract_cli.errors import CliError
from refract_cli.management import Management
from refract_cli.project import Project
from refract_cli.targets import DirectTarget, WorkspaceTarget

POLL_SECONDS = 0.5
FINAL_MIGRATION = {"SUCCESS", "ROLLBACK_SUCCESS", "ROLLBACK_FAILURE"}


@dataclass
class Outcome:
    cluster: str
    service: str
    stage: str
    endpoint: str
    status: str  # succeeded, failed, up_to_date, dry_run
    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    revision: int | None = None
    reason: str = ""
    deploy_id: str | None = None
    service_token: str = ""

    def as_dict(self) -> dict[str, Any]:
        body = {k: v for k, v in self.__dict__.items() if k != "service_token"}
        if self.service_token:
            body["service_token"] = self.service_token
        return body


def describe_step(step: dict[str, Any]) -> str:
    kind = step.get("type") or step.get("__typename") or "Step"
    if kind == "CreateField":
        type_name = step.get("cf_typeName") or ""
        if step.get("cf_isList"):
            type_name = f"[{type_name}]"
        if step.get("cf_isRequired"):
            type_name += "!"
        return f"{kind} {step.get('model')}.{step.get('name')}: {type_name}"
    if step.get("model"):
        return f"{kind} {step.get('model')}.{step.get('name')}"
    return f"{kind} {step.get('name') or ''}".strip()


def describe_message(message: dict[str, Any]) -> str:
    where = message.get("type") or "Global"
    if message.get("field"):
        where += f".{message['field']}"
    return f"{where}: {message.get('description', '')}"


class Progress:
    """One live line on a terminal (stderr); plain lines when not a terminal; nothing with
    --json."""

    def __init__(self, enabled: bool) -> None:
        self.terminal = Terminal(stderr=True)
        self.enabled = enabled
        self.live: Live | None = None
        self.last = ""

    def __enter__(self) -> Progress:
        if self.enabled and self.terminal.is_terminal:
            self.live = Live(Text(""), console=self.terminal, transient=True, refresh_per_second=8)
            self.live.__enter__()
        return self

    def update(self, line: str) -> None:
        if not self.enabled or line == self.last:
            return
        self.last = line
        if self.live is not None:
            self.live.update(Text(line))
        else:
            self.terminal.print(line, highlight=False)

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


# --- through the console ----------------------------------------------------------------


def find_service(console: Console, target: WorkspaceTarget) -> dict[str, Any] | None:
    return next(
        (
            s
            for s in console.services(target.workspace)
            if s["server"] == target.server["id"]
            and s["name"] == target.service
            and s["stage"] == target.stage
        ),
        None,
    )


def follow(
    console: Console, workspace: str, deploy: dict[str, Any], progress: Progress, label: str
) -> dict[str, Any]:
    while not deploy["final"]:
        applied = deploy.get("applied")
        steps = len(deploy.get("steps") or [])
        counted = f" ({applied}/{steps} steps applied)" if applied is not None and steps else ""
        stuck = " — stuck: no sign of life from the worker" if deploy.get("stuck") else ""
        progress.update(f"{label}: {deploy['status']}{counted}{stuck}")
        time.sleep(POLL_SECONDS)
        deploy = console.deploy(workspace, deploy["id"])
    return deploy


def deploy_to_workspace(
    console: Console,
    target: WorkspaceTarget,
    project: Project,
    *,
    force: bool,
    dry_run: bool,
    progress: Progress,
) -> Outcome:
    datamodel = project.datamodel()
    outcome = Outcome(target.cluster, target.service, target.stage, target.endpoint, "failed")
    label = f"Deploying {target.service}/{target.stage} to {target.cluster}"
    service = find_service(console, target)
    if service is None:
        if dry_run:
            raise CliError(
                f"{target.service}/{target.stage} does not exist on {target.cluster} yet: a dry"
                " run needs a deployed service.",
                hint="Deploy it without --dry-run first.",
            )
        progress.update(f"{label}: creating the service")
        created = console.post(
            f"workspaces/{target.workspace}/services",
            {
                "server": target.server["id"],
                "name": target.service,
                "stage": target.stage,
                "datamodel": datamodel,
                "protect": bool(project.secret),
            },
        )
        deploy, outcome.service_token = created["deploy"], created.get("token") or ""
        outcome.endpoint = created["endpoint"]
    else:
        outcome.endpoint = service["endpoint"]
        deploy = console.post(
            f"workspaces/{target.workspace}/services/{service['id']}/deploys",
            {"datamodel": datamodel, "force": force, "dry_run": dry_run},
        )
    outcome.deploy_id = deploy["id"]
    deploy = follow(console, target.workspace, deploy, progress, label)
    outcome.steps = deploy.get("steps") or []
    outcome.warnings = deploy.get("warnings") or []
    outcome.errors = deploy.get("errors") or []
    outcome.revision = deploy.get("revision")
    outcome.reason = deploy.get("reason") or ""
    if deploy["status"] == "succeeded":
        if dry_run:
            outcome.status = "dry_run"
        elif not outcome.steps:
            outcome.status = "up_to_date"
        else:
            outcome.status = "succeeded"
    else:
        outcome.status = deploy["status"]
    return outcome


# --- straight to the server ---------------------------------------------------------------


def await_migration(
    management: Management, name: str, stage: str, total: int, progress: Progress, label: str
) -> dict[str, Any]:
    while True:
        status = management.migration_status(name, stage)
        if status.get("errors"):
            return status
        if status["status"] in FINAL_MIGRATION:
            return status
        progress.update(f"{label}: applying changes ({status.get('applied', 0)}/{total})")
        time.sleep(POLL_SECONDS)


def deploy_direct(
    target: DirectTarget,
    project: Project,
    *,
    force: bool,
    dry_run: bool,
    progress: Progress,
) -> Outcome:
    datamodel = project.datamodel()
    management = target.management()
    name, stage = target.project_name, target.stage
    outcome = Outcome(target.name, target.service, stage, target.endpoint, "failed")
    label = f"Deploying {target.service}/{stage} to {target.name}"
    progress.update(f"{label}: connecting")
    management.server_info()
    if not dry_run and management.project(name, stage) is None:
        progress.update(f"{label}: creating stage {stage}")
        management.add_project(name, stage, project.secrets)
    progress.update(f"{label}: planning")
    try:
        payload = management.deploy(
            name, stage, datamodel, project.secrets, dry_run=dry_run, force=force
        )
    except CliError as error:
        if getattr(error, "prisma_code", None) is not None and error.code != "token_refused":
            # A datamodel that does not parse is a GraphQL error: an error of the whole model.
            outcome.errors = [{"type": "Global", "field": None, "description": error.message}]
            outcome.reason = "the server refused the datamodel"
            return outcome
        raise
    migration = payload.get("migration")
    outcome.errors = payload.get("errors") or []
    outcome.warnings = payload.get("warnings") or []
    outcome.steps = (migration or {}).get("steps") or payload.get("steps") or []
    if outcome.errors:
        outcome.reason = f"the datamodel has {len(outcome.errors)} error(s)"
        return outcome
    if dry_run:
        outcome.status = "dry_run"
        return outcome
    if migration is None and outcome.warnings and not force:
        outcome.reason = "the server warns that this deploy would lose data"
        return outcome
    if migration is None or not outcome.steps:
        outcome.status = "up_to_date"
        return outcome
    status = await_migration(management, name, stage, len(outcome.steps), progress, label)
    outcome.revision = status.get("revision")
    if status.get("errors") or status["status"] != "SUCCESS":
        outcome.reason = f"the server's migration ended {status['status']}: " + "; ".join(
            map(str, status.get("errors") or [])
        )
        return outcome
    outcome.status = "succeeded"
    return outcome
