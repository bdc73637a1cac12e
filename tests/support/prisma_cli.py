"""The real Prisma 1 CLI (npm `prisma1@1.34.12`), installed once into a cache folder.

Tests call `prisma_cli()` for the binary and `run_prisma()` to run it with its own HOME, no
update notifier and no telemetry leaving the machine.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

VERSION = "1.34.12"
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PRISMA_CLI_CACHE", ROOT / ".data" / "cache" / f"prisma1-{VERSION}"))


def prisma_cli() -> Path:
    """The path of `prisma1`, installing it with npm on first use (skipped when present)."""
    binary = CACHE / "node_modules" / ".bin" / "prisma1"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: the Prisma CLI tests need Node.js 18+ and npm")
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several test processes may ask at once
        if not binary.exists():
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                 f"prisma1@{VERSION}"],
                cwd=CACHE,
                check=True,
                timeout=600,
            )  # fmt: skip
    return binary


def run_prisma(
    args: list[str],
    *,
    home: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI like a user would, isolated from the machine's own config."""
    full_env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "NO_UPDATE_NOTIFIER": "1",
        # Telemetry goes to a closed local port instead of the internet.
        "STATS_ENDPOINT": "http://127.0.0.1:9/",
        **(env or {}),
    }
    return subprocess.run(
        [str(prisma_cli()), *args],
        cwd=cwd or home,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
