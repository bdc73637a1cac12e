"""`refract servers`: list, add and remove (the local registry and the workspaces' servers)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click
from rich.table import Table

from refract_cli.context import (
    State,
    emit_json,
    err,
    json_option,
    out,
    pass_state,
)
from refract_cli.errors import CliError
from refract_cli.registry import keys_dir, write_private
from refract_cli.targets import (
    ServerChoice,
    registry_choices,
    workspace_choices,
)
from refract_cli.tokens import generate_key_pair, key_pair_from_pem


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


@click.group(invoke_without_command=True)
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
