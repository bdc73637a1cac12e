"""`refract login`, `logout` and `account`: the session key in ~/.prisma/config.yml."""

from __future__ import annotations

import os
import socket
import time
import webbrowser
from typing import Any

import click

from refract_cli.console import Console, ConsoleUnreachable
from refract_cli.context import (
    State,
    emit_json,
    err,
    interactive,
    json_option,
    out,
    pass_state,
)
from refract_cli.errors import CliError
from refract_cli.transport import Unreachable, request_json


def _save_login(state: State, console: Console, key: str) -> dict[str, Any]:
    me = Console(console.address, key).me()
    registry = state.registry
    registry.session_key = key
    registry.console = console.address
    registry.save()
    return me


@click.command()
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


@click.command()
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


@click.command()
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
