"""What every command shares: the terminal (results on stdout, progress and errors on
stderr), whether one may prompt, JSON output, and the state a command starts from (the
registry, the console address and key)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console as Terminal

from refract_cli.console import Console, console_address
from refract_cli.registry import Registry

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
