"""Deploy benchmark: a 30-type datamodel to a new service, then a change touching 10 types.

Prints the server-side time of each deploy (the `deploy` mutation over loopback, planning, data
checks, DDL and bookkeeping included) and the end-to-end time of the real `prisma1 deploy` for
the same two datamodels on a second service. Targets from issue 4: under 1 s per deploy on the
server, under 3 s for the CLI.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/deploy.py

A fresh database `refract_bench_<random>` is created on that server and dropped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.prisma_cli import run_prisma  # noqa: E402 - needs the checkout on the path

SECRET = "bench-management-secret-0123456789-abcdef"  # noqa: S105 - a throwaway local server
TYPES = 30
ENUMS = 5


def datamodel(changed: bool) -> str:
    """30 types in a chain of 1:n relations plus m:n links and enums; `changed` touches 10."""
    parts = []
    for e in range(ENUMS):
        values = " ".join(f"V{e}_{v}" for v in range(4))
        parts.append(f"enum Kind{e} {{ {values} }}")
    for i in range(TYPES):
        lines = [
            "  id: ID! @id",
            "  name: String!",
            "  code: String @unique",
            "  count: Int",
            "  ratio: Float",
            "  active: Boolean! @default(value: true)",
            "  data: Json",
            f"  kind: Kind{i % ENUMS}",
            "  createdAt: DateTime! @createdAt",
            "  updatedAt: DateTime! @updatedAt",
        ]
        if i + 1 < TYPES:
            lines.append(f"  children: [Type{i + 1:02d}]")
        if i > 0:
            lines.append(f"  parent: Type{i - 1:02d}")
        if i % 3 == 0 and i + 2 < TYPES:
            lines.append(f'  links: [Type{i + 2:02d}] @relation(name: "Link{i:02d}")')
        if i % 3 == 2 and i >= 2 and (i - 2) % 3 == 0:
            lines.append(f'  linkedFrom: [Type{i - 2:02d}] @relation(name: "Link{i - 2:02d}")')
        if changed and i % 3 == 0:
            lines.append("  note: String")
            lines.append("  tags: [String] @scalarList(strategy: RELATION)")
            lines[3] = "  count: Int!"
        parts.append(f"type Type{i:02d} {{\n" + "\n".join(lines) + "\n}")
    return "\n\n".join(parts) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def bench_database() -> Iterator[dict]:
    url = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    params = conninfo_to_dict(url)
    params["dbname"] = "postgres"
    name = f"refract_bench_{secrets.token_hex(4)}"
    with psycopg.connect(make_conninfo(**params), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {
            "connector": "postgres",
            "host": params.get("host") or "localhost",
            "port": int(params.get("port") or 5432),
            "user": params.get("user") or "postgres",
            "password": params.get("password") or "",
            "database": name,
        }
    finally:
        with psycopg.connect(make_conninfo(**params), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def runtime(database: dict) -> Iterator[str]:
    port = free_port()
    config = {"port": port, "managementApiSecret": SECRET, "databases": {"default": database}}
    env = {**os.environ, "PRISMA_CONFIG": yaml.safe_dump(config)}
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(url + "/status", timeout=1)  # noqa: S310 - loopback
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def management(url: str, query: str, variables: dict) -> dict:
    now = int(time.time())
    token = jwt.encode(
        {"grants": [{"target": "*/*", "action": "*"}], "iat": now, "exp": now + 600},
        SECRET,
        algorithm="HS256",
    )
    request = urllib.request.Request(  # noqa: S310 - loopback
        url + "/management",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


DEPLOY = """mutation($name: String!, $stage: String!, $types: String!) {
  deploy(input: {name: $name, stage: $stage, types: $types}) {
    errors { description } warnings { description } migration { revision applied }
  }
}"""


def server_deploy(url: str, service: str, types: str) -> tuple[float, int]:
    started = time.perf_counter()
    answer = management(url, DEPLOY, {"name": service, "stage": "dev", "types": types})
    took = time.perf_counter() - started
    payload = answer["data"]["deploy"]
    assert not payload["errors"] and payload["migration"], answer
    return took, payload["migration"]["applied"]


def cli_deploy(project: Path, home: Path) -> float:
    started = time.perf_counter()
    result = run_prisma(
        ["deploy", "--force"],
        home=home,
        cwd=project,
        env={"PRISMA_MANAGEMENT_API_SECRET": SECRET, "CLOUD_API_ENDPOINT": "http://127.0.0.1:9/"},
        timeout=300,
    )
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"prisma1 deploy failed:\n{result.stdout}\n{result.stderr}")
    return took


def main() -> int:
    first, second = datamodel(changed=False), datamodel(changed=True)
    with bench_database() as database, runtime(database) as url:
        management(
            url,
            'mutation { addProject(input: {name: "bench", stage: "dev"}) { project { name } } }',
            {},
        )
        create_time, create_steps = server_deploy(url, "bench", first)
        change_time, change_steps = server_deploy(url, "bench", second)

        with tempfile.TemporaryDirectory() as tmp:
            home, project = Path(tmp) / "home", Path(tmp) / "project"
            home.mkdir()
            project.mkdir()
            endpoint = url.replace("127.0.0.1", "localhost") + "/benchcli/dev"
            (project / "prisma.yml").write_text(
                f"endpoint: {endpoint}\ndatamodel: datamodel.prisma\n"
            )
            (project / "datamodel.prisma").write_text(first)
            cli_create = cli_deploy(project, home)
            (project / "datamodel.prisma").write_text(second)
            cli_change = cli_deploy(project, home)

    print(f"datamodel: {TYPES} types, {ENUMS} enums, {len(first)} bytes")
    print(f"server deploy, new service ({create_steps} steps): {create_time * 1000:.0f} ms")
    print(f"server deploy, 10 types changed ({change_steps} steps): {change_time * 1000:.0f} ms")
    print(f"prisma1 deploy end to end, new service: {cli_create:.2f} s")
    print(f"prisma1 deploy end to end, 10 types changed: {cli_change:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
