"""The `refract` commands. Each one reads the registry and prisma.yml, resolves where it goes
(`targets`), and prints for a person, or JSON with `--json`. Without a terminal nothing
prompts: an error names the flag or the prisma.yml property to set."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import webbrowser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import questionary
from rich.console import Console as Terminal
from rich.table import Table

from refract_cli import __version__
from refract_cli.console import Console, ConsoleUnreachable, console_address
from refract_cli.deploying import (
    Outcome,
    Progress,
    deploy_direct,
    deploy_to_workspace,
    describe_message,
    describe_step,
    find_service,
)
from refract_cli.errors import CliError
from refract_cli.project import Project, find_project
from refract_cli.registry import Registry, keys_dir, write_private
from refract_cli.targets import (
    DirectTarget,
    ServerChoice,
    WorkspaceTarget,
    registry_choices,
    resolve,
    workspace_choices,
)
from refract_cli.tokens import generate_key_pair, key_pair_from_pem, service_token
from refract_cli.transport import Unreachable, request_json

out = Terminal(highlight=False, soft_wrap=True)
err = Terminal(stderr=True, highlight=False, soft_wrap=True)


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


class State:
    def __init__(self, console_flag: str | None) -> None:
        self.console_flag = console_flag
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry()
        return self._registry

    def console(self, key: str | None = None) -> Console:
        address = console_address(self.console_flag, self.registry)
        if key is None:
            key = os.environ.get("PRISMA_CLOUD_SESSION_KEY") or self.registry.session_key
        return Console(address, key)


pass_state = click.make_pass_decorator(State)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
project_option = click.option(
    "--project", "-p", "project_file", help="The prisma.yml to use (default ./prisma.yml)."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--console",
    "console_flag",
    metavar="URL",
    help="The console's address (else REFRACT_CONSOLE, else the registry's, else"
    " http://localhost:3000).",
)
@click.version_option(__version__, prog_name="refract")
@click.pass_context
def cli(ctx: click.Context, console_flag: str | None) -> None:
    """Refract's command-line client: log in, list servers, deploy Prisma 1 services."""
    ctx.obj = State(console_flag)


# --- login, logout, account ----------------------------------------------------------------


def _save_login(state: State, console: Console, key: str) -> dict[str, Any]:
    me = Console(console.address, key).me()
    registry = state.registry
    registry.session_key = key
    registry.console = console.address
    registry.save()
    return me


@cli.command()
@click.option("--key", "-k", help="A session key from the console's settings page (for CI).")
@click.option("--no-browser", is_flag=True, help="Only print the link; do not open a browser.")
@json_option
@pass_state
def login(state: State, key: str | None, no_browser: bool, as_json: bool) -> None:
    """Log in to the console: the device flow in the browser, or --key KEY."""
    console = state.console(key="")
    if key:
        me = _save_login(state, console, key.strip())
    else:
        started = console.call(
            "POST",
            "cli-login",
            {"client_name": "refract", "host": socket.gethostname()[:200]},
            auth=False,
        )[1]
        link = started["verification_uri_complete"]
        err.print(f"Open {link} and check that it shows the code [bold]{started['user_code']}[/].")
        graphical = os.environ.get("DISPLAY") or os.environ.get("BROWSER")
        if not no_browser and interactive() and graphical:
            webbrowser.open(link)
        err.print("Waiting for you to authorize this login in the browser…")
        key = _await_login(console, started)
        me = _save_login(state, console, key)
    if as_json:
        emit_json({"email": me["email"], "console": console.address})
    else:
        out.print(f"Logged in to {console.address} as {me['email']}.")


def _await_login(console: Console, started: dict[str, Any]) -> str:
    interval = int(started.get("interval") or 5)
    deadline = time.monotonic() + int(started.get("expires_in") or 600)
    while time.monotonic() < deadline:
        try:
            status, answer = request_json(
                "POST",
                f"{console.address}/api/v1/cli-login/poll",
                {"device_code": started["device_code"]},
                timeout=interval + 60,
            )
        except Unreachable as error:
            raise ConsoleUnreachable(
                f"The console at {console.address} cannot be reached ({error}).",
                code="console_unreachable",
            ) from None
        if status == 200 and isinstance(answer, dict) and answer.get("key"):
            return str(answer["key"])
        code = answer.get("code") if isinstance(answer, dict) else None
        if code == "slow_down":
            interval = int(answer.get("interval") or interval + 5)
        elif code == "access_denied":
            raise CliError("The login was denied in the browser.", code="access_denied")
        elif code in {"expired_token", "invalid_grant"}:
            raise CliError(
                "The login request expired.", hint="Run `refract login` again.", code=code
            )
        elif status == 429:
            interval += 1
        elif code != "authorization_pending":
            raise CliError(f"The console answered HTTP {status}: {answer}")
        time.sleep(interval)
    raise CliError("The login request expired.", hint="Run `refract login` again.")


@cli.command()
@json_option
@pass_state
def logout(state: State, as_json: bool) -> None:
    """Revoke the session key on the console and remove it from ~/.prisma/config.yml."""
    registry = state.registry
    key = registry.session_key
    if not key:
        result = {"logged_out": False, "message": "You were not logged in."}
    else:
        console = state.console(key=key)
        try:
            status, _ = console.call("DELETE", "session-keys/current", expect=(204, 401))
            message = (
                "Logged out: the key is revoked on the console and removed from this machine."
                if status == 204
                else "Logged out: the console no longer accepted this key (already revoked or"
                " expired); removed it from this machine."
            )
            revoked = True
        except ConsoleUnreachable:
            message = (
                f"The console at {console.address} cannot be reached: removed the key from this"
                " machine, but it is still valid until you revoke it in the console's settings"
                " page (Settings → CLI sessions and keys)."
            )
            revoked = False
        registry.session_key = ""
        registry.save()
        result = {"logged_out": True, "revoked": revoked, "message": message}
    if as_json:
        emit_json(result)
    else:
        out.print(result["message"])


@cli.command()
@json_option
@pass_state
def account(state: State, as_json: bool) -> None:
    """Who you are logged in as, and your workspaces."""
    console = state.console()
    me = console.me()
    if as_json:
        emit_json({**me, "console": console.address})
        return
    out.print(f"Email: {me['email']}\nName: {me['name']}\nConsole: {console.address}")
    for membership in me["workspaces"]:
        out.print(f"  workspace {membership['slug']} ({membership['role']})")


# --- servers -------------------------------------------------------------------------------


def all_choices(state: State, probe: bool) -> tuple[list[ServerChoice], str]:
    """Registry entries and, when logged in, every server of every workspace; and a note when
    the workspaces could not be listed."""
    choices = registry_choices(state.registry, probe)
    console = state.console()
    note = ""
    if console.session_key:
        try:
            choices += workspace_choices(console)
        except CliError as error:
            note = f"Workspace servers not listed: {error.message}"
    else:
        note = "Not logged in: only the local registry is listed (`refract login`)."
    return choices, note


@cli.group(invoke_without_command=True)
@json_option
@click.pass_context
def servers(ctx: click.Context, as_json: bool) -> None:
    """List the servers you can deploy to (the local registry and your workspaces')."""
    if ctx.invoked_subcommand is not None:
        return
    state: State = ctx.obj
    choices, note = all_choices(state, probe=True)
    if as_json:
        emit_json({"servers": [c.as_dict() for c in choices], "note": note})
        return
    table = Table("cluster (for prisma.yml)", "kind", "status", "endpoint", "from")
    for choice in choices:
        table.add_row(
            choice.cluster,
            choice.kind,
            choice.status + (f" ({choice.version})" if choice.version else ""),
            choice.endpoint,
            "registry" if choice.source == "registry" else f"workspace {choice.workspace}",
        )
    out.print(table)
    if not choices:
        out.print(
            "No servers yet: `refract servers add NAME URL`, or provision a sandbox in the console."
        )
    if note:
        err.print(note)


def _check_origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
        raise CliError(
            f"{url!r} is not a server address.", hint="Give its origin, e.g. http://localhost:4466."
        )
    return f"{parts.scheme}://{parts.netloc}"


@servers.command("add")
@click.argument("name")
@click.argument("url")
@click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False),
    help="Use this PEM private key instead of making a new pair (e.g. to add back an entry"
    " that `prisma1 login` or `logout` dropped from the registry).",
)
@json_option
@pass_state
def servers_add(state: State, name: str, url: str, key_file: str | None, as_json: bool) -> None:
    """Add a server to the local registry with a new key pair; print its configuration."""
    if "/" in name or not name.strip() or name != name.strip():
        raise CliError(f"{name!r} cannot be a registry name (no `/`: that is for workspaces).")
    origin = _check_origin(url)
    registry = state.registry
    if registry.cluster(name) is not None:
        raise CliError(
            f"{name!r} is already in the registry.",
            hint=f"`refract servers remove {name}` first, or choose another name.",
        )
    if key_file:
        key_path = Path(key_file).expanduser().resolve()
        keys = key_pair_from_pem(key_path.read_text(encoding="utf-8"), str(key_path))
    else:
        keys = generate_key_pair()
        key_path = keys_dir() / f"{name}.pem"
        write_private(key_path, keys.private_pem)
    registry.add_cluster(name, origin, str(key_path))
    registry.save()
    indented = "\n".join(f"  {line}" for line in keys.public_pem.strip().splitlines())
    config = f"managementPublicKey: |\n{indented}\n"
    if as_json:
        emit_json(
            {
                "cluster": name,
                "host": origin,
                "private_key_file": str(key_path),
                "public_key": keys.public_pem,
                "config": config,
            }
        )
        return
    out.print(f"Added {name} ({origin}) to {registry.path}; its private key is {key_path}.")
    out.print(
        "Configure the server with this public key (add it to its Prisma config, PRISMA_CONFIG),"
        " then deploy with `cluster: " + name + "` in prisma.yml:\n"
    )
    click.echo(config)


@servers.command("remove")
@click.argument("name")
@pass_state
def servers_remove(state: State, name: str) -> None:
    """Remove a server from the local registry (and the key `servers add` made for it)."""
    registry = state.registry
    entry = registry.cluster(name)
    if entry is None or not registry.remove_cluster(name):
        known = ", ".join(e.name for e in registry.clusters()) or "none"
        raise CliError(f"{name!r} is not in the registry. Known: {known}.")
    registry.save()
    key_file = keys_dir() / f"{name}.pem"
    if entry.secret == str(key_file) and key_file.exists():
        key_file.unlink()
    out.print(f"Removed {name} from {registry.path}.")


# --- deploy ----------------------------------------------------------------------------------


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
                    "The console gave this service a secret; its token (7 days, shown once):\n"
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


@cli.command()
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
            if project.secret:
                err.print(
                    "Note: on a workspace server the console keeps the service's secret;"
                    " `secret` of prisma.yml only decides that the service is protected."
                )
            outcome = deploy_to_workspace(
                console, target, project, force=force, dry_run=dry_run, progress=progress
            )
        else:
            outcome = deploy_direct(
                target, project, force=force, dry_run=dry_run, progress=progress
            )
    _report(outcome, as_json, force)


# --- info, token, delete, init -----------------------------------------------------------------


def _target(state: State, project: Project) -> DirectTarget | WorkspaceTarget:
    target = resolve(project, state.registry, state.console())
    if target is None:
        raise CliError(
            f"{project.path} names no server.",
            hint="Set `cluster:` (see `refract servers`), or run `refract deploy` to choose one.",
            code="no_cluster",
        )
    return target


@cli.command()
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


@cli.command()
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


@cli.command()
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


@cli.command()
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


def main() -> None:
    as_json = "--json" in sys.argv[1:]
    try:
        code = cli.main(standalone_mode=False, prog_name="refract")
    except CliError as error:
        if as_json:
            emit_json(error.as_dict())
        else:
            err.print(f"[red]Error:[/] {error.message}")
            if error.hint:
                err.print(error.hint)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        err.print("Aborted.")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
