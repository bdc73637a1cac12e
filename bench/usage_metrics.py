"""What counting usage costs, and the service page with a week of it (issue 14):

    .venv/bin/python bench/usage_metrics.py [--seconds 6] [--rounds 6] [--connections 8]
        [--loads 5] [--only throughput|paint]

(1) throughput: the data API (bench/data_api.py's data and queries, reused by import) served
    by two runtimes on one database, one counting (the default) and one with
    `usage: {enabled: false}`, driven by wrk in rounds that alternate which goes first; the
    median round of each and the ratio are printed (target: counting costs under 3%), with the
    runtime process's CPU time per request (from /proc: on a shared machine, a steadier figure
    than throughput). Also the cost of one `UsageCounter.request` call (what the request path
    pays), timed in-process.
(2) paint: 7 days of minute rows (and 20 operations every minute) inserted straight into the
    runtime's usage tables (here only: the console itself only ever asks the management API),
    then the service page loaded in Chromium: first contentful paint, the hour's graphs drawn,
    and the week's graphs drawn after a click on "Last week" (medians of `--loads` loads).

Needs `wrk` and Chromium (CHROMIUM_PATH or `chromium`); uses the embedded PostgreSQL and Redis
unless DATABASE_URL/REDIS_URL are set, in scratch databases dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data_api import (  # noqa: E402 - reused, not copied
    OURS,
    deploy_bench_service,
    median,
    process,
    require,
    run_wrk,
    runtime_config,
    scratch_database,
    seed,
    wait_http,
)
from cloud import devstack  # noqa: E402

OPERATIONS = 20  # distinct operations of the service, every minute of the week


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (Linux /proc), in seconds: what a request costs
    the runtime, less sensitive than throughput to what else the machine runs meanwhile."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counting_cost() -> tuple[float, float]:
    """Microseconds one counted request costs the runtime's process, timed in-process (best of
    5): on the request path (reading the answer for errors, then `UsageCounter.request`), and
    its share of the flush's work in the process (building the flush's JSON, for a second of
    2,000 requests of one service)."""
    from runtime.envelope import RawJson
    from runtime.usage import outcome, store
    from runtime.usage.counter import UsageCounter

    counter = UsageCounter()
    payload = {"query": OURS["single"], "operationName": None}
    answer = RawJson(b'{"data":{"user":{"id":"u0042","name":"User 42","email":"u@b.example"}}}')

    def one() -> None:
        error, refused = outcome(200, answer)
        counter.request(
            "_default",
            "bench$dev",
            latency=0.0012,
            error=error,
            storage_refused=refused,
            payload=payload,
        )

    calls = 200_000
    path = min(timeit.repeat(one, number=calls, repeat=5)) / calls * 1e6

    batch = UsageCounter()
    for _ in range(2000):
        batch.request("_default", "bench$dev", latency=0.0012, payload=payload)
    snapshot = batch.take()
    flush = min(timeit.repeat(lambda: store.flush_parameters(snapshot, {}), number=20, repeat=5))
    return path, flush / 20 / 2000 * 1e6


def throughput(seconds: int, rounds: int, connections: int) -> None:
    import psycopg
    import yaml
    from psycopg.conninfo import make_conninfo

    logs = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    with devstack.services("refract") as env, scratch_database(env["DATABASE_URL"]) as params:
        conninfo = make_conninfo(**{k: v for k, v in params.items() if v})
        ports = {"counting": devstack.free_port(), "not counting": devstack.free_port()}
        with contextlib.ExitStack() as stack:
            urls = {}
            pids = {}
            for label, port in ports.items():
                config = runtime_config(params, port, connections)
                if label == "not counting":
                    config["usage"] = {"enabled": False}
                command = [sys.executable, "-m", "runtime", "--host", "127.0.0.1",
                           "--log-level", "warning"]  # fmt: skip
                running = stack.enter_context(
                    process(
                        command,
                        logs / f"runtime-{port}.log",
                        cwd=ROOT,
                        env={**env, "PRISMA_CONFIG": yaml.safe_dump(config)},
                    )
                )
                wait_http(f"http://127.0.0.1:{port}/status", running, label)
                urls[label] = f"http://127.0.0.1:{port}/bench/dev"
                pids[label] = running.pid
            management = f"http://127.0.0.1:{ports['counting']}/management"
            deploy_bench_service(management)
            seed(conninfo)
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for query in ("single", "list"):
                for round_ in range(rounds):
                    order = list(urls.items())
                    if round_ % 2:
                        order.reverse()  # alternate who goes first: a slow spell hits both
                    for label, url in order:
                        run_wrk(url, OURS[query], 2, connections)  # warm-up
                        before = cpu_seconds(pids[label])
                        figures = run_wrk(url, OURS[query], seconds, connections)
                        used = cpu_seconds(pids[label]) - before
                        figures["cpu_us"] = used / figures["requests"] * 1e6
                        results.setdefault((query, label), []).append(figures)
            with psycopg.connect(conninfo) as conn:
                counted = conn.execute(
                    'SELECT sum("requests") FROM management."UsageTotal"'
                ).fetchone()[0]
    print(f"(1) throughput: wrk -t1 -c{connections} -d{seconds}s, {rounds} rounds each, "
          "alternating; one runtime process each on one database")  # fmt: skip
    print(f"{'query':8} {'usage':13} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU µs/req':>11}  rounds (req/s)")  # fmt: skip
    for (query, label), runs in results.items():
        m = median(runs)
        every = ", ".join(f"{run['rps']:.0f}" for run in runs)
        cpu = statistics.median(run["cpu_us"] for run in runs)
        print(f"{query:8} {label:13} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} "
              f"{cpu:11.1f}  {every}")  # fmt: skip
    for query in ("single", "list"):
        on, off = median(results[(query, "counting")]), median(results[(query, "not counting")])
        pairs = [
            a["rps"] / b["rps"]
            for a, b in zip(
                results[(query, "counting")], results[(query, "not counting")], strict=True
            )
        ]
        cpu = [
            statistics.median(run["cpu_us"] for run in results[(query, label)])
            for label in ("counting", "not counting")
        ]
        print(f"{query:8} counting/not counting: throughput {on['rps'] / off['rps']:.3f} "
              f"(medians; per round: {', '.join(f'{p:.3f}' for p in pairs)}); "
              f"runtime CPU per request {cpu[0] / cpu[1]:.3f}")  # fmt: skip
    print(f"requests the counting runtime recorded: {counted}")
    path, flush = counting_cost()
    cpu = statistics.median(run["cpu_us"] for run in results[("single", "not counting")])
    print(f"one counted request, in-process: {path:.2f} µs on the request path + {flush:.2f} µs "
          f"of flush work = {100 * (path + flush) / cpu:.2f}% of the {cpu:.0f} µs of runtime "
          "CPU a `single` request costs without counting")  # fmt: skip


WEEK_SQL = (
    """
WITH minutes AS (
  SELECT m, (extract(epoch FROM m)::bigint / 60) AS n FROM generate_series(
    date_trunc('minute', now()) - interval '7 days', date_trunc('minute', now()),
    interval '1 minute') AS m)
INSERT INTO management."UsageMinute" ("server", "service", "minute", "requests", "operations",
  "errors", "throttled", "delayMs", "delayMaxMs", "refused", "storageRefused", "latencySumMs",
  "latency", "storageBytes", "throttledBy")
SELECT '_default', %(pid)s, m, 60 + n %% 40, 60 + n %% 40, n %% 3, n %% 5, (n %% 5) * 400,
  CASE WHEN n %% 5 > 0 THEN 1000 ELSE 0 END, CASE WHEN n %% 97 = 0 THEN 2 ELSE 0 END, 0,
  (60 + n %% 40) * 4.2, ARRAY[0, 5, 20, 25, 8, 1, 1, 0, 0, 0, 0, 0, 0, 0]::bigint[],
  1048576 + (n %% 10080) * 10,
  CASE WHEN n %% 5 > 0 THEN ARRAY[400, 1000]::bigint[] ELSE ARRAY[]::bigint[] END
FROM minutes
ON CONFLICT DO NOTHING
""",
    """
INSERT INTO management."UsageDocument" ("server", "service", "key", "name", "document")
SELECT '_default', %(pid)s, 'op' || k, 'Operation' || k, 'query Operation' || k || '{posts{id}}'
FROM generate_series(1, {ops}) AS k ON CONFLICT DO NOTHING
""",
    """
INSERT INTO management."UsageOperation" ("server", "service", "minute", "key", "count",
  "errors", "latencySumMs", "latency")
SELECT '_default', %(pid)s, m, 'op' || k, 3 + k, k %% 2, (3 + k) * k * 0.5,
  ARRAY[0, 1, 1, k %% 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]::bigint[]
FROM generate_series(date_trunc('minute', now()) - interval '7 days',
  date_trunc('minute', now()), interval '1 minute') AS m, generate_series(1, {ops}) AS k
ON CONFLICT DO NOTHING
""",
)


def paint(loads: int) -> None:
    import psycopg
    import yaml
    from cryptography.fernet import Fernet

    chromium = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("bench: Chromium is missing (CHROMIUM_PATH or `chromium`)")
    with devstack.services("refract") as env:
        parts = urlsplit(env["DATABASE_URL"])
        database = f"refract_bench_{secrets.token_hex(3)}"
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        database_url = urlunsplit(parts._replace(path=f"/{database}"))
        scratch = Path(tempfile.mkdtemp(prefix="refract-bench-"))
        key_file, public_pem = devstack.platform_key(scratch / "platform-key.pem")
        port, console_port = devstack.free_port(), devstack.free_port()
        runtime_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in env.items() if k != "PLATFORM_PRIVATE_KEY_FILE"},
            "DATABASE_URL": database_url,
            "PLATFORM_PRIVATE_KEY": key_file.read_text(),
            "SANDBOX_REGIONS": f"bench={runtime_url}",
            "LOG_LEVEL": "WARNING",
            "DEBUG": "true",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloud.settings")
        config = {
            "port": port,
            "managementPublicKey": public_pem,
            "databases": {"default": devstack.runtime_database(database_url)},
            "redisUrl": env["REDIS_URL"],
            "sandbox": {"rate": 10, "perSeconds": 10, "maxWaiting": 25, "storageMb": 100},
        }
        runtime_env = {**env, "PRISMA_CONFIG": yaml.safe_dump(config)}
        command = [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--log-level",
                   "warning"]  # fmt: skip
        try:
            with process(command, scratch / "runtime.log", cwd=ROOT, env=runtime_env) as rt:
                wait_http(f"{runtime_url}/status", rt, "the runtime")
                page_url, email, password = console_fixtures(database_url)
                console = [sys.executable, "manage.py", "runserver", "--noreload",
                           f"127.0.0.1:{console_port}"]  # fmt: skip
                with process(console, scratch / "console.log", cwd=ROOT, env=env) as web:
                    base = f"http://127.0.0.1:{console_port}"
                    wait_http(f"{base}/sign-in/", web, "the console")
                    load_page(chromium, base, page_url, email, password)  # warm-up
                    figures = [load_page(chromium, base, page_url, email, password)
                               for _ in range(loads)]  # fmt: skip
        finally:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    rows = 7 * 24 * 60 + 1
    print(f"(2) the service page with 7 days of usage ({rows} minute rows, {OPERATIONS} "
          f"operations a minute: {rows * OPERATIONS} operation rows); "
          f"{loads} loads, medians")  # fmt: skip
    for key, label in (
        ("fcp", "first contentful paint"),
        ("hour", "hour graphs drawn (from navigation)"),
        ("week", "week graphs drawn (from the click)"),
        ("week_json", "week JSON (console -> runtime -> back)"),
    ):
        values = [f[key] for f in figures]
        print(f"    {label:40} {statistics.median(values):8.1f} ms   (max {max(values):.1f})")


def console_fixtures(database_url: str) -> tuple[str, str, str]:
    """A member, a workspace, its sandbox and a deployed service (in-process, as the views'
    service functions do), then a week of usage rows for it. Returns the page and the login."""
    import django

    django.setup()
    import psycopg
    from django.conf import settings
    from django.core.management import call_command

    from accounts import services as accounts
    from servers import deploys, runs, services
    from servers.starters import get_starter

    call_command("migrate", verbosity=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
    user = accounts.sign_up(email=email, name="Bench", password=password)
    assert user is not None
    slug = f"b{secrets.token_hex(3)}"
    workspace = accounts.create_workspace(user=user, name=f"Bench {slug}", slug=slug)
    server = services.provision_sandbox(user, workspace, "bench")
    outcome = services.run_provisioning(str(server.id))
    server.refresh_from_db()
    if server.status != server.Status.HEALTHY:
        raise SystemExit(f"bench: sandbox {server.status} ({outcome}): {server.status_reason}")
    starter = get_starter("blog")
    new = deploys.create_service(user, server, "blog", "dev", starter.datamodel, starter="blog")
    runs.run_deploy(str(new.deploy.id))
    pid = f"{server.project_name('blog')}$dev"
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in WEEK_SQL:
            conn.execute(statement.replace("{ops}", str(OPERATIONS)), {"pid": pid})  # type: ignore[arg-type]
    return f"/w/{slug}/services/{new.service.id}/", email, password


@contextlib.contextmanager
def browser(chromium: str) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield launched
        finally:
            launched.close()


def load_page(chromium: str, base: str, page_url: str, email: str, password: str) -> dict:
    with browser(chromium) as launched:
        context = launched.new_context(base_url=base, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto("/sign-in/")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/sign-in" not in url)
        page.goto(page_url)
        page.wait_for_selector('#usage[data-loaded="hour"]', timeout=60_000)
        fcp = page.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
        )
        hour = page.evaluate("performance.now()")
        started = time.perf_counter()
        page.get_by_role("button", name="Last week").click()
        page.wait_for_selector('#usage[data-loaded="week"]', timeout=60_000)
        week = (time.perf_counter() - started) * 1000
        json_ms = page.evaluate(
            "performance.getEntriesByType('resource').filter(e => e.name.includes('window=week'))"
            "[0].duration"
        )
        points = page.locator("#chart-requests").get_attribute("data-points")
        assert points == "168", points
        context.close()
    return {"fcp": fcp, "hour": hour, "week": week, "week_json": json_ms}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--only", choices=("throughput", "paint"))
    args = parser.parse_args()
    require("wrk", "apt-get install -y wrk")
    if args.only != "paint":
        throughput(args.seconds, args.rounds, args.connections)
    if args.only != "throughput":
        paint(args.loads)


if __name__ == "__main__":
    main()
