"""The console's REST API (`/api/v1/`), authenticated with the session key of the registry."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from refract_cli.errors import CliError
from refract_cli.registry import Registry
from refract_cli.transport import Unreachable, request_json

DEFAULT_CONSOLE = "http://localhost:3000"


def console_address(flag: str | None, registry: Registry) -> str:
    """`--console`, else REFRACT_CONSOLE, else the registry's `refractConsole`, else the
    development console."""
    address = flag or os.environ.get("REFRACT_CONSOLE") or registry.console or DEFAULT_CONSOLE
    return address.rstrip("/")


class ConsoleUnreachable(CliError):
    pass


class NotLoggedIn(CliError):
    pass


class Console:
    def __init__(self, address: str, session_key: str = "") -> None:
        self.address, self.session_key = address, session_key

    def require_login(self) -> None:
        if not self.session_key:
            raise NotLoggedIn(
                "You are not logged in to the console.",
                hint=f"Run `refract login` (console {self.address}), or `refract login --key KEY`"
                " in CI.",
                code="not_logged_in",
            )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        expect: tuple[int, ...] = (200, 201, 202, 204),
    ) -> tuple[int, Any]:
        if auth:
            self.require_login()
        url = f"{self.address}/api/v1/{path}"
        try:
            status, answer = request_json(method, url, body, token=self.session_key if auth else "")
        except Unreachable as error:
            raise ConsoleUnreachable(
                f"The console at {self.address} cannot be reached ({error}).",
                hint="Start it, or point refract at yours with --console URL or REFRACT_CONSOLE.",
                code="console_unreachable",
            ) from None
        if status in expect:
            return status, answer
        detail = answer.get("detail") if isinstance(answer, dict) else None
        if status == 401:
            raise CliError(
                f"The console refused your session key: {detail or 'not valid'}.",
                hint="It was revoked or has expired: run `refract login` again.",
                code="session_key_refused",
            )
        if status == 404 and auth:
            raise CliError(f"Not found on the console: {path}.", code="not_found")
        if isinstance(answer, dict) and answer.get("code") == "invalid":
            fields = answer.get("fields") or {}
            lines = [
                f"{name}: {' '.join(map(str, m if isinstance(m, list) else [m]))}"
                for name, m in fields.items()
            ]
            raise CliError("The console refused the request: " + "; ".join(lines), code="invalid")
        raise CliError(
            f"The console answered HTTP {status}: {detail or answer}",
            code=(answer or {}).get("code", "console_error")
            if isinstance(answer, dict)
            else "console_error",
        )

    def get(self, path: str) -> Any:
        return self.call("GET", path)[1]

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body if body is not None else {})[1]

    # --- the calls the commands make ------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self.get("me")

    def servers(self, workspace: str) -> list[dict[str, Any]]:
        return self.get(f"workspaces/{quote(workspace)}/servers")

    def services(self, workspace: str) -> list[dict[str, Any]]:
        return self.get(f"workspaces/{quote(workspace)}/services")

    def service(self, workspace: str, service_id: str) -> dict[str, Any]:
        return self.get(f"workspaces/{quote(workspace)}/services/{service_id}")

    def deploy(self, workspace: str, deploy_id: str) -> dict[str, Any]:
        return self.get(f"workspaces/{quote(workspace)}/deploys/{deploy_id}")
