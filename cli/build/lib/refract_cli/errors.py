"""The one kind of failure the commands report: a message that says what to do, and an exit
code. `main` prints it (or its JSON with `--json`) and exits; nothing prints a traceback."""

from __future__ import annotations


class CliError(Exception):
    def __init__(self, message: str, *, hint: str = "", code: str = "error", exit_code: int = 1):
        super().__init__(message)
        self.message, self.hint, self.code, self.exit_code = message, hint, code, exit_code

    def as_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body
