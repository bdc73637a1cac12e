"""Many services on one runtime: throughput, latency, memory and cold starts.

    .venv/bin/python bench/many_services.py [--services 1000] [--datamodels 100] [--seconds 10]
        [--api-cache N]

A sandbox holds many services, and users edit their datamodels, so there are many distinct
datamodels too. This deploys `--services` services spread over `--datamodels` distinct
datamodels of 5 to 30 types each (`bench.datamodels`: enums, unique fields, defaults, inline and
link-table relations, scalar lists; each its own API), through the runtime's management API
(`addProject` and `deploy`, four at a time), and 50 rows per service. Then:

- the first request to a service of a new 30-type datamodel (the process has not built its API:
  a cold build), several times over new datamodels, and to a new service of a datamodel it has
  (the shared, warm API);
- one request to every service in turn, checking each answers its own rows (nothing timed
  runs before every request has answered once without errors);
- wrk (-t1 -c8): the same list query spread evenly over every service (twice: the first run is
  the warm-up of the pool's new connections, reported on a line of its own), then sent to one
  service only. Prints requests per second, p50/p99 latency, CPU per request and the runtime's
  resident memory after each run.

`--api-cache` sets the runtime's `apiCacheSize` (generated APIs kept per process). Needs `wrk`.
Uses the embedded PostgreSQL unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
from bench.datamodels import datamodel, types_for  # noqa: E402
from cloud import devstack  # noqa: E402

ROWS = 50
COLD_TYPES = 30
COLD_SAMPLES = 3
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
    """`Item` rows named after their service (so an answer shows whose rows it holds)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name in names:
            conn.execute(
                sql.SQL(
                    'INSERT INTO {} (id, name, count, "createdAt", "updatedAt") '
                    "SELECT 'i' || lpad(i::text, 24, '0'), %s || ' ' || lpad(i::text, 3, '0'), "
                    "i, now(), now() FROM generate_series(1, %s) i"
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


def first_request_ms(base: str, name: str, pid: int | None = None) -> float:
    """One request to the service, checked: no errors, and only the service's own rows. With
    `pid`, the runtime's CPU milliseconds for it instead of the wall-clock time (other
    processes' load on this machine inflates the latter)."""
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    started = time.perf_counter()
    answer = post(f"{base}/{name}/dev", {"query": QUERY})
    elapsed = (time.perf_counter() - started) * 1000
    if pid is not None:
        elapsed = (cpu_seconds(pid) - cpu_before) * 1000
    assert "errors" not in answer, answer
    items = answer["data"]["items"]
    assert len(items) == 10 and all(i["name"].startswith(f"{name} ") for i in items), answer
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--datamodels", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--api-cache", type=int, default=None)
    args = parser.parse_args()
    require("wrk", "apt-get install -y wrk")
    logs = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    models = {k: datamodel(k, types_for(k, args.datamodels)) for k in range(args.datamodels)}
    with devstack.services("refract") as env, scratch_database(env["DATABASE_URL"]) as params:
        conninfo = make_conninfo(**{k: v for k, v in params.items() if v})
        port = devstack.free_port()
        config = runtime_config(params, port, args.connections)
        if args.api_cache is not None:
            config["apiCacheSize"] = args.api_cache
        runtime_env = {**env, "PRISMA_CONFIG": yaml.safe_dump(config)}
        command = [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--log-level",
                   "warning"]  # fmt: skip
        with process(command, logs / "runtime.log", cwd=ROOT, env=runtime_env) as runtime:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/status", runtime, "the runtime")
            management = f"{base}/management"
            names = [f"s{i}" for i in range(args.services)]
            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                for _ in pool.map(
                    lambda i: deploy(management, names[i], models[i % args.datamodels]),
                    range(args.services),
                ):
                    pass
            deployed_s = time.monotonic() - started
            seed(conninfo, names)
            rss_start = rss_mb(runtime.pid)
            # Cold starts: datamodels this process never built, then a new service of each.
            cold, cold_cpu, warm = [], [], []
            for c in range(COLD_SAMPLES):
                text = datamodel(args.datamodels + 1 + c, COLD_TYPES)
                deploy(management, f"cold{c}", text)
                deploy(management, f"warm{c}", text)
                # Another new datamodel, for the runtime's CPU time of the same kind of request.
                other = datamodel(args.datamodels + 1 + COLD_SAMPLES + c, COLD_TYPES)
                deploy(management, f"cpu{c}", other)
                seed(conninfo, [f"cold{c}", f"warm{c}", f"cpu{c}"])
                cold.append(first_request_ms(base, f"cold{c}"))
                warm.append(first_request_ms(base, f"warm{c}"))
                cold_cpu.append(first_request_ms(base, f"cpu{c}", runtime.pid))
            # Every service once, each answer checked, before anything is timed.
            started = time.monotonic()
            firsts = [first_request_ms(base, name) for name in names]
            first_pass_s = time.monotonic() - started
            rss_first = rss_mb(runtime.pid)
            paths = [f"/{name}/dev" for name in names]
            # The first seconds under load open the pool's other connections, whose
            # PostgreSQL backends warm their catalog caches and prepare each service's
            # statement on its second run there: reported on its own line.
            warming = run_wrk(base, paths, args.seconds, args.connections, runtime.pid)
            spread = run_wrk(base, paths, args.seconds, args.connections, runtime.pid)
            rss_spread = rss_mb(runtime.pid)
            one = run_wrk(base, paths[:1], args.seconds, args.connections, runtime.pid)
            rss_end = rss_mb(runtime.pid)
    sizes = [types_for(k, args.datamodels) for k in range(args.datamodels)]
    print(
        f"{args.services} services from {args.datamodels} datamodels of {min(sizes)} to "
        f"{max(sizes)} types, {ROWS} rows each; wrk -t1 -c{args.connections} -d{args.seconds}s; "
        f"1 runtime process; apiCacheSize {args.api_cache or 'default'}"
    )
    print(f"deploys (management API, 4 at a time): {deployed_s:.1f} s for {args.services}")
    print(
        f"first request to every service in turn: {first_pass_s:.1f} s "
        f"(median {statistics.median(firsts):.1f} ms, max {max(firsts):.0f} ms)"
    )
    print(
        f"{'requests':28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>8} {'CPU us/req':>10}"
    )
    print(f"{'spread, first run (warm-up)':28} {warming['rps']:8.0f} {warming['p50']:8.2f} "
          f"{warming['p99']:8.2f} {'':8} {warming['cpu_us']:10.0f}")  # fmt: skip
    print(f"{'spread over every service':28} {spread['rps']:8.0f} {spread['p50']:8.2f} "
          f"{spread['p99']:8.2f} {rss_spread:8.0f} {spread['cpu_us']:10.0f}")  # fmt: skip
    print(f"{'one service':28} {one['rps']:8.0f} {one['p50']:8.2f} {one['p99']:8.2f} "
          f"{rss_end:8.0f} {one['cpu_us']:10.0f}")  # fmt: skip
    print(f"spread/one throughput: {spread['rps'] / one['rps']:.2f}")
    print(
        f"RSS after deploys and seeding: {rss_start:.0f} MB; "
        f"after the first request to every service: {rss_first:.0f} MB"
    )
    print(
        f"first request, new {COLD_TYPES}-type datamodel (cold API build): "
        + ", ".join(f"{ms:.0f}" for ms in cold)
        + " ms (runtime CPU: "
        + ", ".join(f"{ms:.0f}" for ms in cold_cpu)
        + " ms); new service of a known datamodel: "
        + ", ".join(f"{ms:.0f}" for ms in warm)
        + " ms"
    )
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
