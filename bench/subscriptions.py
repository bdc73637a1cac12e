"""Subscription fan-out: one write, N subscribers (1, 100, 1,000 by default).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python bench/subscriptions.py [--subscribers 1,100,1000] [--writes 50]

Starts two runtime processes on a fresh database `refract_bench_<random>` (dropped at the end):
the subscribers hold websockets to the first (`graphql-ws`, one subscription each, all with the
same document), the writes go through the second, so every event travels through PostgreSQL's
NOTIFY. For each N the writes are sent one at a time, each once every subscriber has the
previous one, and the script prints

- delivery latency: from sending the write to a subscriber reading its event, over every
  (write, subscriber) pair, p50 and p99, and the time until the last subscriber had it;
- the write's latency (the `createPost` round trip) p50 and p99, beside the same writes with no
  subscriber at all: what the subscribers add to a writer;
- and what publishing costs any mutation: the notifying statement alone, when nobody listens
  (the registry's lookup, `runtime.subscriptions.events`) and when it notifies, and with
  `pgbench` the commits a second of 8 writers either way (PostgreSQL runs notifying commits one
  at a time).

All clients run in this one process on one event loop: with 1,000 subscribers, reading and
parsing their messages is part of the delivery latency measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runtime.subscriptions.events import listeners_table, notifying_statements  # noqa: E402
from tests.runtime.conftest import Database, run_runtime  # noqa: E402

DATAMODEL = "type Post { id: ID! @id  title: String! }"
SUBSCRIPTION = "subscription { post(where: {mutation_in: [CREATED]}) { node { id title } } }"
CREATE = "mutation($t: String!) { createPost(data: {title: $t}) { id } }"
CHANNEL = "refract_bench"  # the channel the statement-only measures notify


def post(url: str, payload: Any) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Subscribers:
    def __init__(self, url: str, count: int) -> None:
        self.url = url.replace("http://", "ws://")
        self.count = count
        self.connections: list[Any] = []
        self.received: dict[int, list[float]] = {}
        self.complete: dict[int, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        for _ in range(self.count):
            ws = await connect(self.url, subprotocols=["graphql-ws"], max_size=None)  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
            await ws.send(
                json.dumps({"type": "start", "id": "1", "payload": {"query": SUBSCRIPTION}})
            )
            await ws.send(json.dumps({"type": "stop", "id": "ready"}))
            while json.loads(await ws.recv()).get("id") != "ready":
                pass
            self.connections.append(ws)
            self.tasks.append(asyncio.get_running_loop().create_task(self._read(ws)))

    async def _read(self, ws: Any) -> None:
        async for message in ws:
            now = time.perf_counter()
            if '"type":"data"' not in message:
                continue
            title = json.loads(message)["payload"]["data"]["post"]["node"]["title"]
            index = int(title.split(":", 1)[0])
            times = self.received.setdefault(index, [])
            times.append(now)
            if len(times) == self.count:
                self.complete.setdefault(index, asyncio.Event()).set()

    async def close(self) -> None:
        for ws in self.connections:
            await ws.close()
        for task in self.tasks:
            task.cancel()


async def measure(write_url: str, read_url: str, subscribers: int, writes: int) -> dict[str, Any]:
    subs = Subscribers(read_url, subscribers)
    if subscribers:
        await subs.open()
    delivery: list[float] = []
    last: list[float] = []
    write_ms: list[float] = []
    for i in range(writes):
        started = time.perf_counter()
        await asyncio.to_thread(post, write_url, {"query": CREATE, "variables": {"t": f"{i}:x"}})
        write_ms.append((time.perf_counter() - started) * 1000)
        if subscribers:
            event = subs.complete.setdefault(i, asyncio.Event())
            await asyncio.wait_for(event.wait(), 60)
            times = subs.received[i]
            delivery += [(t - started) * 1000 for t in times]
            last.append((max(times) - started) * 1000)
    await subs.close()
    return {"delivery": delivery, "last": last, "write": write_ms}


def notify_cost(database: Database, listened: bool, rounds: int = 2000) -> float:
    """The median of the statement a mutation adds before COMMIT (µs), on one connection: the
    runtime's own, with its channel listed in the registry (it notifies) or not (nobody
    listens: the registry's lookup alone)."""
    statement, _ = notifying_statements(listeners_table("management"))
    payload = "t0:0:1:" + json.dumps({"p": "bench$dev", "e": [{"k": "CREATED", "m": "Post"}]})
    with psycopg.connect(database.conninfo(), autocommit=True) as conn, listing(conn, listened):
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            conn.execute(statement, [CHANNEL, payload, CHANNEL])  # type: ignore[arg-type]
            samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


@contextlib.contextmanager
def listing(conn: psycopg.Connection, listened: bool) -> Iterator[None]:
    """`CHANNEL` listed in the registry by `conn`'s session while the block runs, if `listened`."""
    registry = sql.Identifier("management", "Listener")
    if listened:
        conn.execute(
            sql.SQL('INSERT INTO {} ("channel", "backend") VALUES (%s, pg_backend_pid())').format(
                registry
            ),
            [CHANNEL],
        )
    try:
        yield
    finally:
        conn.execute(sql.SQL('DELETE FROM {} WHERE "channel" = %s').format(registry), [CHANNEL])


def commit_rate(database: Database, listened: bool, seconds: int = 5, clients: int = 8) -> float:
    """Commits a second of `clients` writers (pgbench), each inserting a row and running the
    notifying statement before its COMMIT, with the channel listed (every commit notifies, and
    PostgreSQL runs notifying commits one at a time) or not."""
    statement, _ = notifying_statements(listeners_table("management"))
    notify = statement % (f"'{CHANNEL}'", "'payload'", f"'{CHANNEL}'")
    script = f"BEGIN;\nINSERT INTO bench_commits (v) VALUES ('x');\n{notify};\nCOMMIT;\n"
    with psycopg.connect(database.conninfo(), autocommit=True) as conn, listing(conn, listened):
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commits (id bigserial PRIMARY KEY, v text)")
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
            file.write(script)
            file.flush()
            command = ["pgbench", "-n", "-M", "prepared", f"-c{clients}", "-j2", f"-T{seconds}"]
            command += ["-f", file.name, "-h", database.host, "-p", str(database.port)]
            command += ["-U", database.user, database.database]
            env = {**os.environ, "PGPASSWORD": database.password}
            output = subprocess.run(
                command, capture_output=True, text=True, env=env, check=True
            ).stdout
    return float(re.search(r"tps = ([\d.]+)", output).group(1))  # type: ignore[union-attr]


async def run(database: Database, counts: list[int], writes: int) -> None:
    config = {"databases": {"default": database.prisma_config()}}
    with (
        tempfile.TemporaryDirectory() as logs,
        run_runtime(config, Path(logs)) as reader,
        run_runtime(config, Path(logs)) as writer,
    ):
        add = 'mutation { addProject(input: {name: "bench", stage: "dev"}) { project { name } } }'
        post(reader.url + "/management", {"query": add})
        deploy = (
            'mutation($t: String!) { deploy(input: {name: "bench", stage: "dev", types: $t}) '
            "{ errors { description } } }"
        )
        post(reader.url + "/management", {"query": deploy, "variables": {"t": DATAMODEL}})
        path = "/bench/dev"
        await measure(writer.url + path, reader.url + path, 0, 20)  # warm both processes
        quiet = await measure(writer.url + path, reader.url + path, 0, writes)
        print(f"writes with no subscriber: p50 {percentile(quiet['write'], 0.5):.2f} ms, "
              f"p99 {percentile(quiet['write'], 0.99):.2f} ms")  # fmt: skip
        print(
            "the notifying statement alone (every mutation), median: "
            f"{notify_cost(database, listened=False):.0f} µs when nobody listens, "
            f"{notify_cost(database, listened=True):.0f} µs when it notifies"
        )
        if shutil.which("pgbench"):
            print(
                "commits a second, 8 writers inserting a row each: "
                f"{commit_rate(database, listened=False):,.0f} when nobody listens, "
                f"{commit_rate(database, listened=True):,.0f} when each commit notifies"
            )
        else:
            print(
                "(pgbench is missing: no commit rates; Debian: apt-get install postgresql-client)"
            )
        print()
        print(f"{'N':>6} {'delivery p50':>13} {'p99':>9} {'last p50':>9} "
              f"{'write p50':>10} {'p99':>8} {'added p50':>10}")  # fmt: skip
        for n in counts:
            result = await measure(writer.url + path, reader.url + path, n, writes)
            added = percentile(result["write"], 0.5) - percentile(quiet["write"], 0.5)
            print(
                f"{n:>6} {percentile(result['delivery'], 0.5):>10.2f} ms "
                f"{percentile(result['delivery'], 0.99):>6.2f} ms "
                f"{percentile(result['last'], 0.5):>6.2f} ms "
                f"{percentile(result['write'], 0.5):>7.2f} ms "
                f"{percentile(result['write'], 0.99):>5.2f} ms {added:>+7.2f} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", default="1,100,1000")
    parser.add_argument("--writes", type=int, default=50)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set DATABASE_URL to a PostgreSQL server (a scratch database is made there)")
    params = conninfo_to_dict(url)
    database = Database(
        host=str(params.get("host") or "localhost"),
        port=int(params.get("port") or 5432),
        user=str(params.get("user") or "postgres"),
        password=str(params.get("password") or ""),
        database=f"refract_bench_{secrets.token_hex(4)}",
    )
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.database)))
    try:
        counts = [int(n) for n in args.subscribers.split(",")]
        asyncio.run(run(database, counts, args.writes))
    finally:
        with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(database.database)
                )
            )


if __name__ == "__main__":
    main()
