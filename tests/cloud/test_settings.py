"""Settings default to production: without DEBUG, a process refuses to start unconfigured."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.multiprocess]

ROOT = Path(__file__).resolve().parents[2]


def check_without(*names: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "REFRACT_TESTING", *names}}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_debug_the_development_secret_key_is_refused():
    result = check_without("SECRET_KEY", "SECRET_KEY_FILE")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr  # not silently the development key


def test_the_dev_commands_ask_for_debug_themselves():
    from cloud import devstack

    saved = {k: os.environ.pop(k) for k in ("DEBUG",) if k in os.environ}
    try:
        with devstack.services("refract") as env:
            assert env["DEBUG"] == "true"
    finally:
        os.environ.update(saved)
