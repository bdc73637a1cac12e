"""The `refract` commands. Each one reads the registry and prisma.yml, resolves where it goes
(`targets`), and prints for a person, or JSON with `--json`. Without a terminal nothing
prompts: an error names the flag or the prisma.yml property to set."""

from __future__ import annotations

import sys

import click

from refract_cli import __version__
from refract_cli.commands import account, deploy, servers, service
from refract_cli.context import State, emit_json, err
from refract_cli.errors import CliError


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


for command in (
    account.login,
    account.logout,
    account.account,
    servers.servers,
    deploy.deploy,
    service.info,
    service.token,
    service.delete,
    service.init,
):
    cli.add_command(command)


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
