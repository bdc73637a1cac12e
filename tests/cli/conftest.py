"""`refract` as a user runs it: a subprocess with its own HOME (its own ~/.prisma/config.yml),
talking to the real console (`live_server`), a real worker and the runtime as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

BIN = Path(sys.executable).parent


def refract_command() -> list[str]:
    """The installed console script (`make` installs ./cli into the virtualenv)."""
    script = BIN / "refract"
    return [str(script)] if script.exists() else [sys.executable, "-m", "refract_cli"]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class User:
    """One person's machine: a HOME of their own and a project folder."""

    home: Path
    project: Path
    console: str = ""

    @property
    def registry_file(self) -> Path:
        return self.home / ".prisma" / "config.yml"

    def registry(self) -> dict[str, Any]:
        return yaml.safe_load(self.registry_file.read_text()) or {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
            **extra,
        }
        if self.console:
            env["REFRACT_CONSOLE"] = self.console
        return env

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 180, **env: str) -> Run:
        done = subprocess.run(
            [*refract_command(), *args],
            cwd=cwd or self.project,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def make_user(tmp_path):
    def make(name: str = "dev", console: str = "") -> User:
        home, project = tmp_path / name / "home", tmp_path / name / "project"
        home.mkdir(parents=True)
        project.mkdir()
        return User(home, project, console)

    return make
