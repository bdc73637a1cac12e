"""The lock files cover pyproject.toml: a dependency added to pyproject but not locked installs
nowhere (`make` installs from the locks only), and a fresh clone's tests would fail."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def locked(lock: str) -> set[str]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(m) for m in re.findall(r"^([A-Za-z0-9_.\-]+)==", text, re.M)}


def declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_every_dependency_is_locked() -> None:
    assert declared() - locked("requirements.lock") == set(), "run `make lock`"
    assert declared("dev") - locked("requirements-dev.lock") == set(), "run `make lock`"
