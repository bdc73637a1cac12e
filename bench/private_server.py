"""A private server's per-request overhead against the runtime's default server, in one run.

    .venv/bin/python bench/private_server.py [--seconds 10] [--connections 8] [--rounds 3]

A private server is added to a running runtime through its operator API and served from a
database of its own; the runtime picks it by the request's Host and opens its pools on first
use. Everything else is the default server's path, so the two should answer at the same speed
(target: within 5%). This starts one runtime process (no sandbox limits) on a scratch database,
registers a private server bound to a second scratch database (its own role with a password),
deploys the same datamodel with the same 2,000 users and 20,000 posts to a service on each, and
drives both with wrk (-t1) in alternating rounds: one user by id, and 100 users with up to 20
posts each. Prints requests per second and p50/p99 per server (the median round) and the
private server's throughput as a share of the default's. Needs `wrk`. Uses the embedded
PostgreSQL unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import jwt
import psycopg
import yaml
from cryptography.fernet import Fernet
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data_api import (  # noqa: E402
    DATAMODEL,
    OURS,
    SCHEMA,
    SERVICE,
    STAGE,
    process,
    require,
    runtime_config,
    scratch_database,
    seed,
    wait_http,
    wrk_figures,
)
from cloud import devstack  # noqa: E402

PRIVATE_HOST = "private.bench.test"
PRIVATE_SECRET = secrets.token_urlsafe(24)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Host"] = %s
wrk.body = %s
"""
ADD_PROJECT = (
    "mutation($name: String!, $stage: String!) {"
    " addProject(input: {name: $name, stage: $stage}) { project { name } } }"
)
DEPLOY = (
    "mutation($name: String!, $stage: String!, $types: String!) {"
    " deploy(input: {name: $name, stage: $stage, types: $types}) { errors { description } } }"
)


def call(url: str, payload: object, headers: dict[str, str], method: str = "POST") -> dict:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json", **headers},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


def deploy(runtime: str, headers: dict[str, str]) -> None:
    """Add the project, then deploy the datamodel to it (as `prisma1 deploy` does)."""
    names = {"name": SERVICE, "stage": STAGE}
    add = call(f"{runtime}/management", {"query": ADD_PROJECT, "variables": names}, headers)
    if add.get("errors"):
        raise SystemExit(f"bench: addProject failed: {add}")
    variables = {"name": SERVICE, "stage": STAGE, "types": DATAMODEL}
    answer = call(f"{runtime}/management", {"query": DEPLOY, "variables": variables}, headers)
    if answer.get("errors") or answer["data"]["deploy"]["errors"]:
        raise SystemExit(f"bench: deploy failed: {answer}")
    time.sleep(1)  # the deploy applies in the background; a second is plenty for two types


def private_database(params: dict) -> dict:
    """The private server's database: a role of its own, with a password, owning it."""
    role, password = f"bench_{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    with psycopg.connect(
        make_conninfo("", **{**params, "dbname": "postgres"}), autocommit=True
    ) as c:
        c.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
    with psycopg.connect(make_conninfo("", **params), autocommit=True) as c:
        c.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
            sql.Identifier(params["dbname"]), sql.Identifier(role)))  # fmt: skip
        c.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
            sql.Identifier(params["dbname"]), sql.Identifier(role)))  # fmt: skip
    return {**params, "user": role, "password": password}


def run_wrk(url: str, host: str, query: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (json.dumps(host), json.dumps(json.dumps({"query": query}))))
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(script.name).unlink()
    return wrk_figures(output, url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    require("wrk", "apt-get install -y wrk")
    scratch = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    key_file, public_pem = devstack.platform_key(scratch / "platform-key.pem")
    private_pem = key_file.read_text()
    with (
        devstack.services("refract") as env,
        scratch_database(env["DATABASE_URL"]) as default_db,
        scratch_database(env["DATABASE_URL"]) as user_db,
    ):
        user_db = private_database(user_db)
        port = devstack.free_port()
        config = runtime_config(default_db, port, 10)
        config["hosts"] = ["127.0.0.1"]
        config["operator"] = {
            "publicKey": public_pem,
            "encryptionKey": Fernet.generate_key().decode(),
        }
        path = scratch / "runtime.yml"
        path.write_text(yaml.safe_dump(config))
        runtime = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "runtime", "--config", str(path), "--host", "127.0.0.1",
                   "--log-level", "warning"]  # fmt: skip
        with process(command, scratch / "runtime.log", cwd=ROOT) as running:
            wait_http(f"{runtime}/status", running, "the runtime")
            now = int(time.time())
            operator = jwt.encode(
                {"aud": "refract-operator", "iat": now, "exp": now + 600}, private_pem, "RS256"
            )
            entry = {
                "hosts": [PRIVATE_HOST],
                "database": {
                    "host": user_db.get("host") or "localhost",
                    "port": int(user_db.get("port") or 5432),
                    "user": user_db["user"],
                    "password": user_db["password"],
                    "database": user_db["dbname"],
                    "sslmode": "prefer",
                    "connectionLimit": 10,
                },
                "managementApiSecret": PRIVATE_SECRET,
            }
            call(f"{runtime}/_operator/servers/bench", entry,
                 {"Authorization": f"Bearer {operator}"}, method="PUT")  # fmt: skip
            deploy(runtime, {})
            token = jwt.encode(
                {"grants": [{"target": "*/*", "action": "*"}], "iat": now, "exp": now + 600},
                PRIVATE_SECRET,
                "HS256",
            )
            deploy(runtime, {"Host": PRIVATE_HOST, "Authorization": f"Bearer {token}"})
            seed(make_conninfo("", **default_db))
            seed(make_conninfo("", **user_db))
            with psycopg.connect(make_conninfo("", **user_db)) as conn:
                owner = conn.execute(
                    "SELECT schema_owner FROM information_schema.schemata WHERE schema_name = %s",
                    [SCHEMA],
                ).fetchone()
            print(f"private server: schema {SCHEMA} in {user_db['dbname']}, owned by {owner[0]}")
            url = f"{runtime}/{SERVICE}/{STAGE}"
            targets = {"default": "127.0.0.1", "private": PRIVATE_HOST}
            for name in ("single", "list"):
                for host in targets.values():  # warm both: plans, pools
                    run_wrk(url, host, OURS[name], 2, args.connections)
                rounds: dict[str, list[dict]] = {k: [] for k in targets}
                for _ in range(args.rounds):
                    for label, host in targets.items():
                        rounds[label].append(
                            run_wrk(url, host, OURS[name], args.seconds, args.connections)
                        )
                figures = {
                    k: sorted(v, key=lambda r: r["rps"])[len(v) // 2] for k, v in rounds.items()
                }
                for label, result in figures.items():
                    every = ", ".join(f"{r['rps']:.0f}" for r in rounds[label])
                    print(f"{name:6} {label:7}: {result['rps']:8.0f} req/s"
                          f"  p50 {result['p50']:5.2f} ms  p99 {result['p99']:5.2f} ms"
                          f"   (rounds: {every})")  # fmt: skip
                share = figures["private"]["rps"] / figures["default"]["rps"]
                print(f"{name:6} private/default: {share:.3f} (target: at least 0.95)")


if __name__ == "__main__":
    main()
