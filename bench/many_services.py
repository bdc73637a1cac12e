"""Many services on one runtime: throughput, latency, memory and cold starts.

    .venv/bin/python bench/many_services.py [--services 200] [--datamodels 10] [--seconds 10]

A sandbox holds many services deployed from a few starter datamodels. This deploys `--services`
services spread over `--datamodels` distinct datamodels (each 10 types; they differ in field
names, so each is its own API), 50 rows per service, then drives the runtime with wrk
(-t1 -c8): the same list query sent to every service in turn, and, for comparison, to one
service only. Prints requests per second, p50/p99 latency and the runtime's resident memory
after each run, and the first request to a service whose datamodel the process has not built
yet (a cold API) and to a new service of a datamodel it has (a shared, warm API). Needs `wrk`.
Uses the embedded PostgreSQL unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data_api import (  # noqa: E402
    post,
    process,
    require,
    runtime_config,
    scratch_database,
    wait_http,
    wrk_figures,
)
from cloud import devstack  # noqa: E402

TYPES = 10
ROWS = 50
QUERY = "{ items(first: 10, orderBy: name_ASC) { id name count } }"
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %s
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format(nil, paths[i])
end
"""


def datamodel(k: int) -> str:
    """Ten types; `Item` is queried, the others give the API its size. Field names carry k."""
    types = [
        "type Item {\n  id: ID! @id\n  name: String!\n  count: Int\n"
        f"  note{k}: String\n  parts: [Part{k}x1!]!\n}}"
    ]
    for t in range(1, TYPES):
        types.append(
            f"type Part{k}x{t} {{\n  id: ID! @id\n  label{k}: String!\n  size: Int\n"
            f"  flag: Boolean\n  at: DateTime\n"
            + ("  item: Item @relation(link: INLINE)\n" if t == 1 else "")
            + "}"
        )
    return "\n".join(types)


def deploy(management: str, name: str, types: str) -> None:
    post(
        management,
        {
            "query": 'mutation($n: String!) { addProject(input: {name: $n, stage: "dev"}) '
            "{ project { name } } }",
            "variables": {"n": name},
        },
    )
    answer = post(
        management,
        {
            "query": "mutation($n: String!, $t: String!) { deploy(input: {name: $n, "
            'stage: "dev", types: $t}) { errors { description } } }',
            "variables": {"n": name, "t": types},
        },
    )
    assert answer["data"]["deploy"]["errors"] == [], answer


def seed(conninfo: str, names: list[str]) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {} (id, name, count) SELECT 'i' || lpad(i::text, 24, '0'), "
                    "%s || ' ' || i, i FROM generate_series(1, %s) i"
                ).format(sql.Identifier(f"{name}$dev", "Item")),
                [name, ROWS],
            )


def rss_mb(pid: int) -> float:
    """Resident memory of the runtime (its process and children), in MB."""
    total = 0
    pids = [pid, *_children(pid)]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU the runtime process has used so far (load on the machine from other
    processes does not inflate it, unlike wall-clock throughput)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        out += [int(c) for c in children]
    return out


def run_wrk(
    base: str, paths: list[str], seconds: int, connections: int, pid: int
) -> dict[str, float]:
    cpu_before = cpu_seconds(pid)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        body = json.dumps({"query": QUERY})
        script.write(WRK_SCRIPT % (json.dumps(body), ", ".join(json.dumps(p) for p in paths)))
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    cpu = cpu_seconds(pid) - cpu_before
    figures = wrk_figures(output, base)
    return {**figures, "cpu_us": cpu / max(figures["requests"], 1) * 1e6}


def first_request_ms(url: str) -> float:
    started = time.perf_counter()
    answer = post(url, {"query": QUERY})
    assert "errors" not in answer, answer
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--datamodels", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    require("wrk", "apt-get install -y wrk")
    logs = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    with devstack.services("refract") as env, scratch_database(env["DATABASE_URL"]) as params:
        conninfo = make_conninfo(**{k: v for k, v in params.items() if v})
        port = devstack.free_port()
        config = runtime_config(params, port, args.connections)
        runtime_env = {**env, "PRISMA_CONFIG": yaml.safe_dump(config)}
        command = [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--log-level",
                   "warning"]  # fmt: skip
        with process(command, logs / "runtime.log", cwd=ROOT, env=runtime_env) as runtime:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/status", runtime, "the runtime")
            management = f"{base}/management"
            names = [f"s{i}" for i in range(args.services)]
            started = time.monotonic()
            for i, name in enumerate(names):
                deploy(management, name, datamodel(i % args.datamodels))
            deployed_s = time.monotonic() - started
            seed(conninfo, names)
            rss_start = rss_mb(runtime.pid)
            # Cold starts: a datamodel this process never built, then a new service of it.
            deploy(management, "cold", datamodel(args.datamodels + 1))
            deploy(management, "warm", datamodel(args.datamodels + 1))
            seed(conninfo, ["cold", "warm"])
            cold_ms = first_request_ms(f"{base}/cold/dev")
            warm_ms = first_request_ms(f"{base}/warm/dev")
            paths = [f"/{name}/dev" for name in names]
            run_wrk(
                base, paths, 3, args.connections, runtime.pid
            )  # warm-up: every service once at least
            spread = run_wrk(base, paths, args.seconds, args.connections, runtime.pid)
            rss_spread = rss_mb(runtime.pid)
            one = run_wrk(base, paths[:1], args.seconds, args.connections, runtime.pid)
            rss_end = rss_mb(runtime.pid)
    print(
        f"{args.services} services from {args.datamodels} datamodels of {TYPES} types, "
        f"{ROWS} rows each; wrk -t1 -c{args.connections} -d{args.seconds}s; 1 runtime process"
    )
    print(f"deploys: {deployed_s:.1f} s for {args.services} services")
    print(
        f"{'requests':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8} {'CPU us/req':>10}"
    )
    print(f"{'spread over every service':28} {spread['rps']:8.0f} {spread['p50']:8.2f} "
          f"{spread['p99']:8.2f} {rss_spread:8.0f} {spread['cpu_us']:10.0f}")  # fmt: skip
    print(f"{'one service':28} {one['rps']:8.0f} {one['p50']:8.2f} {one['p99']:8.2f} "
          f"{rss_end:8.0f} {one['cpu_us']:10.0f}")  # fmt: skip
    print(f"RSS after deploys and seeding: {rss_start:.0f} MB")
    print(
        f"first request, new datamodel (cold API build): {cold_ms:.0f} ms; "
        f"new service of a known datamodel: {warm_ms:.0f} ms"
    )


if __name__ == "__main__":
    main()
