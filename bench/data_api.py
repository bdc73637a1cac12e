"""The runtime's data API against PostGraphile 4 and against PostgreSQL alone, in one run.

    .venv/bin/python bench/data_api.py [--seconds 10] [--connections 8] [--workers 1] [--rounds 3]
                                       [--rows list single ...] [--baseline ../base]

Needs `wrk` (Debian: `apt-get install -y wrk`), `pgbench` (PostgreSQL's client tools) and
Node.js; PostGraphile 4 is installed with npm into `.data/cache/` on first use. Uses the
embedded PostgreSQL unless DATABASE_URL is set, creates a scratch database with 2,000 users and
20,000 posts (10 each; Post.author indexed) and 100,000 more users without posts, serves it
with our runtime (no sandbox limits) and with PostGraphile, and drives both with the same wrk
settings, in rounds that alternate the servers (the median round is reported, every round's
throughput beside it):

- list: 100 users with up to 20 posts each;
- single: one user by id;
- single-inlined: one user by id, a different user's id inlined in each request's text (as
  playgrounds, `curl` and scripts send them: every text is new to the server);
- create: a new user per request, values in variables (one document text);
- create-inlined: a new user per request, values inlined (a new text every request);
- mixed: by id, short lists and creates (6:2:2), with variables.

Every request of a row is sent once before it is timed, and the bench stops if one answers an
error or a null node (an error answered fast times nothing); wrk counts the timed answers with
errors too, and the bench stops on any. The ids a run creates are new to the database in every
run (wrk's own random numbers repeat from run to run).

Between the reads and the creates, the SQL our runtime compiled for the list and single queries
runs under pgbench: the limit, what PostgreSQL alone needs to build the same answers on the
same data. Prints requests per second, p50/p99 latency and the server process's CPU time per
request (the steadier figure on a shared machine) per server and query, and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import yaml
from psycopg import ClientCursor, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloud import devstack  # noqa: E402

POSTGRAPHILE = ROOT / ".data" / "cache" / "postgraphile-4"
SERVICE, STAGE = "bench", "dev"
SCHEMA = f"{SERVICE}${STAGE}"
DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String!
  posts: [Post!]!
}

type Post {
  id: ID! @id
  title: String!
  author: User! @relation(link: INLINE)
}
"""
ONE_USER = "u" + "0" * 20 + "0042"  # 25 characters, like a cuid

OURS = {
    "list": "{ users(first: 100) { id name posts(first: 20) { title } } }",
    "single": f'{{ user(where: {{id: "{ONE_USER}"}}) {{ id name email }} }}',
    "create": "mutation($email: String!) { createUser(data: {email: $email, "
    'name: "Bench"}) { id } }',
}
THEIRS = {
    "list": "{ allUsers(first: 100) { nodes { id name "
    "postsByAuthor(first: 20) { nodes { title } } } } }",
    "single": f'{{ userById(id: "{ONE_USER}") {{ id name email }} }}',
    "create": "mutation($id: String!, $email: String!) { createUser(input: {user: {id: $id, "
    'email: $email, name: "Bench"}}) { user { id } } }',
}
# Users the inlined by-id row asks for: `v` ids sort after the seeded `u` ones, so the list
# query still reads the same 100 users with their posts.
EXTRA_USERS = 100_000
# Each row is a cycle of request bodies ({"query", "variables"}): wrk sends them in turn. In the
# bodies `__ID__` becomes a new id per request (for creates), `__EMAIL__` an email made from it,
# and `__V__` an existing `v` user's id (a different one each request). Rows marked inlined put
# those values in the document text: every request is a text the server has not seen.
Body = dict[str, object]
ROWS: dict[str, tuple[list[Body], list[Body]]] = {
    "list": ([{"query": OURS["list"]}], [{"query": THEIRS["list"]}]),
    "single": ([{"query": OURS["single"]}], [{"query": THEIRS["single"]}]),
    "single-inlined": (
        [{"query": '{ user(where: {id: "__V__"}) { id name email } }'}],
        [{"query": '{ userById(id: "__V__") { id name email } }'}],
    ),
    "create": (
        [{"query": OURS["create"], "variables": {"email": "__EMAIL__"}}],
        [{"query": THEIRS["create"], "variables": {"id": "__ID__", "email": "__EMAIL__"}}],
    ),
    "create-inlined": (
        [{"query": 'mutation { createUser(data: {email: "__EMAIL__", name: "Bench"}) { id } }'}],
        [{"query": 'mutation { createUser(input: {user: {id: "__ID__", email: "__EMAIL__", '
                   'name: "Bench"}}) { user { id } } }'}],
    ),
    # Mixed, as an application sends them (variables): 6 reads by id, 2 short lists, 2 creates.
    "mixed": (
        [{"query": "query($id: ID!) { user(where: {id: $id}) { id name email } }",
          "variables": {"id": "__V__"}}] * 6
        + [{"query": "{ users(first: 10) { id name posts(first: 5) { title } } }"}] * 2
        + [{"query": OURS["create"], "variables": {"email": "__EMAIL__"}}] * 2,
        [{"query": "query($id: String!) { userById(id: $id) { id name email } }",
          "variables": {"id": "__V__"}}] * 6
        + [{"query": "{ allUsers(first: 10) { nodes { id name "
                     "postsByAuthor(first: 5) { nodes { title } } } } }"}] * 2
        + [{"query": THEIRS["create"], "variables": {"id": "__ID__", "email": "__EMAIL__"}}] * 2,
    ),
}  # fmt: skip
READS = ("list", "single", "single-inlined")
WRITES = ("create", "create-inlined", "mixed")
# wrk's Lua seeds its random numbers the same way every run, so the id prefix comes from
# Python, new for every run: a prefix seen before would repeat the ids of an earlier run, and
# every create would answer a unique-constraint error. Answers with errors are counted (a
# benchmark of errors times nothing) and reported for `wrk_figures` to refuse.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local templates = %s
local counter = 0
local prefix = "%s"
local start = %d
errors = 0
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    errors = errors + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("errors")
  end
  io.write(string.format("answers with errors: %%d\\n", total))
end
request = function()
  counter = counter + 1
  local id = string.format("n%%s%%018d", prefix, counter)
  local existing = string.format("v%%024d", (start + counter) %% %d + 1)
  local body = templates[(counter - 1) %% #templates + 1]
  body = body:gsub("__ID__", id):gsub("__EMAIL__", id .. "@bench.example")
  body = body:gsub("__V__", existing)
  return wrk.format(nil, nil, nil, body)
end
"""


def lua_string(text: str) -> str:
    """A Lua string literal for `text` (JSON's escapes are a subset of Lua's)."""
    return json.dumps(text)


def render(body: Body, counter: int) -> Body:
    """A body as wrk's script fills it in, for the check before timing."""
    made = f"n{secrets.randbelow(10**6):06d}{counter:018d}"
    text = json.dumps(body)
    text = text.replace("__ID__", made).replace("__EMAIL__", made + "@bench.example")
    return json.loads(text.replace("__V__", f"v{counter % EXTRA_USERS + 1:024d}"))


def check(url: str, bodies: list[Body], name: str) -> None:
    """Send each body of a row once: a row that answers errors would time nothing."""
    for i, body in enumerate(bodies):
        answer = post(url, render(body, i))
        if not isinstance(answer, dict) or answer.get("errors") or not answer.get("data"):
            raise SystemExit(f"bench: {name} answers an error, not data: {answer}")
        if any(value is None for value in answer["data"].values()):
            raise SystemExit(f"bench: {name} answers no node: {answer}")


def require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"bench: `{tool}` is missing: {hint}")
    return path


def wait_http(url: str, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: {name} exited with status {process.returncode}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: {name} did not start")


def post(url: str, payload: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


def deploy_bench_service(management: str) -> None:
    """Add the bench service (`bench/dev`) and deploy DATAMODEL to it, through the runtime's
    management API at `management` (a runtime without a management secret)."""
    add = 'mutation { addProject(input: {name: "bench", stage: "dev"}) { project { name } } }'
    post(management, {"query": add})
    deploy = post(management, {
        "query": "mutation($types: String!) { deploy(input: {name: \"bench\", "
                 "stage: \"dev\", types: $types}) { errors { description } } }",
        "variables": {"types": DATAMODEL},
    })  # fmt: skip
    assert deploy["data"]["deploy"]["errors"] == [], deploy


@contextlib.contextmanager
def scratch_database(url: str) -> Iterator[dict]:
    params = conninfo_to_dict(url)
    name = f"refract_bench_{secrets.token_hex(3)}"
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield {**params, "dbname": name}
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def process(
    command: list[str], log: Path, stop: int = signal.SIGTERM, **kwargs: object
) -> Iterator[subprocess.Popen]:
    """A running command, stopped with `stop` (SIGINT lets cProfile write its profile)."""
    with log.open("w") as out:
        running = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    try:
        yield running
    finally:
        running.send_signal(stop)
        try:
            running.wait(timeout=30)
        except subprocess.TimeoutExpired:
            running.kill()


def seed(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        users = sql.SQL(
            "INSERT INTO {} (id, email, name) SELECT 'u' || lpad(i::text, 24, '0'), "
            "'user' || i || '@bench.example', 'User ' || i FROM generate_series(1, 2000) i"
        ).format(sql.Identifier(SCHEMA, "User"))
        posts = sql.SQL(
            "INSERT INTO {} (id, title, author) SELECT 'p' || lpad(i::text, 24, '0'), "
            "'Post ' || i, 'u' || lpad((1 + i % 2000)::text, 24, '0') "
            "FROM generate_series(1, 20000) i"
        ).format(sql.Identifier(SCHEMA, "Post"))
        extra = sql.SQL(
            "INSERT INTO {} (id, email, name) SELECT 'v' || lpad(i::text, 24, '0'), "
            "'extra' || i || '@bench.example', 'Extra ' || i FROM generate_series(1, {}) i"
        ).format(sql.Identifier(SCHEMA, "User"), sql.Literal(EXTRA_USERS))
        conn.execute(users)
        conn.execute(posts)
        conn.execute(extra)
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCHEMA, "User")))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(SCHEMA, "Post")))


def run_wrk(url: str, body: str, seconds: int, connections: int) -> dict[str, float]:
    """wrk on one document (sent with the variables it declares among `$id` and `$email`)."""
    names = {"id": "__ID__", "email": "__EMAIL__"}
    variables = {k: v for k, v in names.items() if f"${k}" in body} or None
    return run_bodies(url, [{"query": body, "variables": variables}], seconds, connections)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux `/proc`)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_bodies(
    url: str, bodies: list[Body], seconds: int, connections: int, pid: int | None = None
) -> dict[str, float]:
    """wrk sending `bodies` in turn (placeholders filled per request, see ROWS); with `pid`,
    also the CPU time that server process used per request (µs): on a shared machine, where
    throughput follows whatever else runs, the steadier figure of what a request costs."""
    before = cpu_seconds(pid) if pid is not None else 0.0
    figures = _run_wrk_bodies(url, bodies, seconds, connections)
    if pid is not None:
        figures["cpu_us"] = (cpu_seconds(pid) - before) / max(figures["requests"], 1) * 1e6
    return figures


_runs = itertools.count(secrets.randbelow(10**6))


def wrk_script(bodies: list[Body]) -> str:
    """The wrk script sending `bodies` in turn, with an id prefix no earlier run used."""
    templates = "{" + ", ".join(lua_string(json.dumps(b)) for b in bodies) + "}"
    prefix = f"{next(_runs) % 10**6:06d}"  # from a random start, one up per run
    return WRK_SCRIPT % (templates, prefix, secrets.randbelow(EXTRA_USERS), EXTRA_USERS)


def _run_wrk_bodies(
    url: str, bodies: list[Body], seconds: int, connections: int
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(bodies))
    ran = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    if "answers with errors:" not in ran.stdout:  # the script failed: nothing was checked
        raise SystemExit(f"bench: wrk's script failed for {url}:\n{ran.stderr}{ran.stdout}")
    return wrk_figures(ran.stdout, url)


def wrk_figures(output: str, url: str) -> dict[str, float]:
    """Requests per second, p50 and p99 (ms) and the request count from wrk's output."""
    if "Non-2xx" in output:
        raise SystemExit(f"bench: errors from {url}:\n{output}")
    errors = re.search(r"^answers with errors: (\d+)$", output, re.M)
    if errors is not None and int(errors.group(1)):
        raise SystemExit(f"bench: {errors.group(1)} answers with errors from {url}:\n{output}")

    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if match is None:
            raise SystemExit(f"bench: no {label} latency in wrk output:\n{output}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50": latency("50%"), "p99": latency("99%"), "requests": requests}


def runtime_config(params: dict, port: int, connections: int) -> dict:
    """A Prisma config for our runtime on the scratch database (no sandbox limits)."""
    return {
        "port": port,
        "databases": {"default": {
            "connector": "postgres", "host": params.get("host") or "localhost",
            "port": int(params.get("port") or 5432), "user": params.get("user") or "postgres",
            "password": params.get("password") or "", "database": params["dbname"],
            "connectionLimit": connections,
        }},
    }  # fmt: skip


def compiled_sql(conninfo: str, schema_json: str, query: str) -> str:
    """The statement our executor runs for `query`, with its parameters inlined."""
    from runtime.opencrud.executor import execute, service_api

    seen: list[str] = []

    class Recording(ClientCursor):
        def execute(self, statement, params=None, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(self.mogrify(statement, params))
            return super().execute(statement, params, **kwargs)

    with psycopg.connect(conninfo, cursor_factory=Recording) as conn:
        answer = execute(service_api(schema_json), SCHEMA, {"query": query}, conn, "bench")
        assert b'"errors"' not in answer.body, answer.body
    (statement,) = seen
    return statement


def run_pgbench(params: dict, statement: str, seconds: int, connections: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(statement.replace("\n", " ") + ";\n")
    env = {**os.environ, "PGPASSWORD": str(params.get("password") or "")}
    command = ["pgbench", "-n", "-M", "simple", f"-c{connections}", "-j2", f"-T{seconds}"]
    command += ["-f", script.name, "-U", str(params.get("user") or "postgres")]
    command += ["-h", str(params.get("host") or "localhost")]
    command += ["-p", str(params.get("port") or 5432), str(params["dbname"])]
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    os.unlink(script.name)
    return float(re.search(r"tps = ([\d.]+)", output).group(1))  # type: ignore[union-attr]


def node_pg_url(params: dict) -> str:
    host = str(params.get("host") or "localhost")
    user, password = params.get("user") or "postgres", params.get("password") or ""
    auth = f"{user}:{password}@" if password else f"{user}@"
    if host.startswith("/"):
        return f"socket:{host}?db={params['dbname']}&user={user}"
    return f"postgres://{auth}{host}:{params.get('port') or 5432}/{params['dbname']}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="runtime processes (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and query")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (say `git worktree add --detach ../base main`) whose runtime is "
        "measured too, on the same database, in the same rounds: before and after in one run",
    )
    parser.add_argument(
        "--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="which rows to run"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run this checkout's runtime under cProfile and write its profile here when it "
        "stops (read it with pstats; the profiler slows the runtime, so its rows mean little)",
    )
    args = parser.parse_args()
    require("wrk", "apt-get install -y wrk")
    require("pgbench", "apt-get install -y postgresql-client")
    npm = require("npm", "install Node.js 18+")
    if not (POSTGRAPHILE / "node_modules" / ".bin" / "postgraphile").exists():
        POSTGRAPHILE.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "postgraphile@4"],
                       cwd=POSTGRAPHILE, check=True)  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="refract-bench-"))
    with devstack.services("refract") as env, scratch_database(env["DATABASE_URL"]) as params:
        conninfo = make_conninfo(**{k: v for k, v in params.items() if v})
        ours_port, theirs_port = devstack.free_port(), devstack.free_port()
        config = runtime_config(params, ours_port, args.connections)
        runtime_env = {**env, "PRISMA_CONFIG": yaml.safe_dump(config)}
        command = [sys.executable, "-m", "runtime", "--host", "127.0.0.1", "--log-level", "warning",
                   "--workers", str(args.workers)]  # fmt: skip
        profiled = command
        if args.profile is not None:
            profiled = [sys.executable, "-m", "cProfile", "-o", str(args.profile.resolve()),
                        *command[1:]]  # fmt: skip
        stop = signal.SIGINT if args.profile is not None else signal.SIGTERM
        with process(profiled, logs / "runtime.log", stop, cwd=ROOT, env=runtime_env) as runtime:
            ours = f"http://127.0.0.1:{ours_port}/{SERVICE}/{STAGE}"
            wait_http(f"http://127.0.0.1:{ours_port}/status", runtime, "the runtime")
            management = f"http://127.0.0.1:{ours_port}/management"
            deploy_bench_service(management)
            seed(conninfo)
            with psycopg.connect(conninfo) as conn:
                schema_json = conn.execute(
                    'SELECT schema FROM management."Migration" WHERE "projectId" = %s '
                    "AND status = 'SUCCESS' ORDER BY revision DESC LIMIT 1",
                    [SCHEMA],
                ).fetchone()[0]
            binary = str(POSTGRAPHILE / "node_modules" / ".bin" / "postgraphile")
            graphile = [binary, "-c", node_pg_url(params), "-s", SCHEMA, "-p", str(theirs_port),
                        "-n", "127.0.0.1", "--disable-query-log"]  # fmt: skip
            with contextlib.ExitStack() as stack:
                postgraphile = stack.enter_context(process(graphile, logs / "postgraphile.log"))
                theirs = f"http://127.0.0.1:{theirs_port}/graphql"
                wait_http(f"http://127.0.0.1:{theirs_port}/graphiql", postgraphile, "PostGraphile")
                urls = {"runtime": ours, "PostGraphile": theirs}
                pids = {"runtime": runtime.pid, "PostGraphile": postgraphile.pid}
                if args.baseline is not None:
                    # The same project in the same database: the baseline reads it from there.
                    base_port = devstack.free_port()
                    base_env = {**env, "PRISMA_CONFIG": yaml.safe_dump(
                        runtime_config(params, base_port, args.connections))}  # fmt: skip
                    base_log = logs / "baseline.log"
                    base = stack.enter_context(
                        process(command, base_log, cwd=args.baseline.resolve(), env=base_env)
                    )
                    wait_http(f"http://127.0.0.1:{base_port}/status", base, "the baseline")
                    urls["baseline"] = f"http://127.0.0.1:{base_port}/{SERVICE}/{STAGE}"
                    pids["baseline"] = base.pid
                results: dict[tuple[str, str], list[dict[str, float]]] = {}

                def measure(name: str) -> None:
                    ours_bodies, theirs_bodies = ROWS[name]
                    bodies = {"runtime": ours_bodies, "PostGraphile": theirs_bodies,
                              "baseline": ours_bodies}  # fmt: skip
                    for label, url in urls.items():
                        check(url, bodies[label], f"{label}'s {name}")
                    # Rounds alternate the servers, so a slow spell of the machine hits both.
                    for _ in range(args.rounds):
                        for label, url in urls.items():
                            run_bodies(url, bodies[label], 2, args.connections)  # warm-up
                            results.setdefault((name, label), []).append(
                                run_bodies(url, bodies[label], args.seconds, args.connections,
                                           pids[label])
                            )  # fmt: skip

                for name in READS:
                    if name in args.rows:
                        measure(name)
                # The limit comes before the creates: users they add sort first by id, so the
                # list query would then read different (postless) rows.
                limits = {
                    name: run_pgbench(
                        params, compiled_sql(conninfo, schema_json, OURS[name]), args.seconds,
                        args.connections,
                    )
                    for name in ("list", "single") if name in args.rows
                }  # fmt: skip
                for name in WRITES:
                    if name in args.rows:
                        measure(name)
    print(
        f"wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} round(s) per server "
        f"(the median shown); 2,000 users with 20,000 posts, {EXTRA_USERS:,} more users; "
        f"runtime: {args.workers} process(es), PostGraphile: 1"
    )
    print(f"{'request':15} {'server':13} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU µs/req':>10}  rounds (req/s)")  # fmt: skip
    medians = {key: median(runs) for key, runs in results.items()}
    cpu = {key: sorted(run["cpu_us"] for run in runs)[(len(runs) - 1) // 2]
           for key, runs in results.items()}  # fmt: skip
    for (name, label), r in medians.items():
        rounds = ", ".join(f"{run['rps']:.0f}" for run in results[(name, label)])
        print(f"{name:15} {label:13} {r['rps']:9.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
              f"{cpu[(name, label)]:10.0f}  {rounds}")  # fmt: skip
    for name in ROWS:
        if name not in args.rows:
            continue
        ratio = medians[(name, "runtime")]["rps"] / medians[(name, "PostGraphile")]["rps"]
        line = f"{name:15} runtime/PostGraphile throughput: {ratio:.2f}x"
        if name in limits:
            limit = limits[name]
            line += f"; pgbench limit {limit:.0f} tps, runtime at {limit / medians[(name, 'runtime')]['rps']:.1f}x of it"  # noqa: E501
        if (name, "baseline") in medians:
            base = medians[(name, "baseline")]["rps"]
            line += (
                f"; baseline/PostGraphile {base / medians[(name, 'PostGraphile')]['rps']:.2f}x, "
                f"runtime/baseline {medians[(name, 'runtime')]['rps'] / base:.2f}x, "
                f"CPU per request runtime/baseline "
                f"{cpu[(name, 'runtime')] / cpu[(name, 'baseline')]:.2f}x"
            )
        print(line)


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    main()
