"""The console's core loop, timed through a real Celery worker and the runtime (issue 11):

    .venv/bin/python bench/servers.py [--runs 10]

(a) from "Provision a sandbox" (`services.provision_sandbox`) to the sandbox's status healthy;
(b) from "Create service" (`deploys.create_service` with the blog starter) to the first
    successful query of the service's endpoint.
Target: under 2 s each on this machine. Prints median and max of each, and where the time of
(b) goes: the task waiting for a worker, the worker's run (management calls and its polling of
`migrationStatus` every DEPLOY_POLL_SECONDS) and the first query.

Starts (or uses, from DATABASE_URL/REDIS_URL) PostgreSQL and Redis, creates a scratch database
`refract_bench_<random>` (dropped at the end), and runs the runtime in sandbox mode with a fresh
platform key pair and a worker as `make run` does (prefork, concurrency 2), on a queue of its
own. The console's part runs in this process: the service functions the views call. Settings
are the defaults (DEPLOY_POLL_SECONDS and the rest) unless set in the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloud import devstack  # noqa: E402


def wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)


def query_once(endpoint: str, token: str, document: str) -> bool:
    parts = urlsplit(endpoint)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request(
        "POST",
        parts.path,
        json.dumps({"query": document}),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    answer = connection.getresponse()
    body = json.loads(answer.read() or b"{}")
    connection.close()
    return answer.status == 200 and "errors" not in body and "data" in body


def summary(label: str, samples: list[float]) -> str:
    return f"{label}: median {statistics.median(samples):7.1f} ms   max {max(samples):7.1f} ms"


def bench(runs: int, runtime_url: str) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts import services as accounts
    from servers import deploys, services
    from servers.models import Deploy, Server
    from servers.starters import get_starter

    call_command("migrate", verbosity=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # no sign-up mail
    email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
    user = accounts.sign_up(email=email, name="Bench", password=password)
    assert user is not None
    starter = get_starter("blog")

    def provision() -> tuple[Server, dict[str, float]]:
        """(a): one new workspace's sandbox, from the click to healthy, and where the time
        went: the request (the row and the server's key pair) and then the worker's check."""
        slug = f"b{secrets.token_hex(3)}"
        workspace = accounts.create_workspace(user=user, name=f"Bench {slug}", slug=slug)
        started = time.perf_counter()
        server = services.provision_sandbox(user, workspace, "bench")
        answered = time.perf_counter()
        wait(
            lambda: (
                Server.objects.filter(id=server.id)
                .exclude(status=Server.Status.PROVISIONING)
                .exists()
            ),
            "the sandbox's check",
        )
        ended = time.perf_counter()
        server.refresh_from_db()
        if server.status != Server.Status.HEALTHY:
            raise SystemExit(f"sandbox {server.status}: {server.status_reason}")
        return server, {
            "total": (ended - started) * 1000,
            "request": (answered - started) * 1000,
            "check": (ended - answered) * 1000,
        }

    def create(server: Server) -> dict[str, float]:
        """(b): a blog service on the sandbox, from the click to its first answered query,
        and where that time went."""
        started = time.perf_counter()
        new = deploys.create_service(user, server, "blog", "dev", starter.datamodel, starter="blog")
        wait(
            lambda: Deploy.objects.filter(id=new.deploy.id, status__in=Deploy.FINAL).exists(),
            "the first deploy",
        )
        ended = time.perf_counter()
        deploy = Deploy.objects.get(id=new.deploy.id)
        if deploy.status != Deploy.Status.SUCCEEDED:
            raise SystemExit(f"deploy {deploy.status}: {deploy.reason}")
        # As the user does once the page says "succeeded": query the endpoint.
        refused = 0
        while not query_once(new.service.endpoint, new.token, starter.example_query):
            refused += 1
            if time.perf_counter() - ended > 30:
                raise SystemExit("the endpoint never answered the example query")
        answered = time.perf_counter()
        assert deploy.started_at and deploy.finished_at
        return {
            "total": (answered - started) * 1000,
            "pickup": (deploy.started_at - deploy.created_at).total_seconds() * 1000,
            "run": (deploy.finished_at - deploy.started_at).total_seconds() * 1000,
            "query": (answered - ended) * 1000,
            "refused": refused,
        }

    print(f"{runs} runs; DEPLOY_POLL_SECONDS={settings.DEPLOY_POLL_SECONDS},"
          f" worker: prefork, concurrency 2; runtime {runtime_url}")  # fmt: skip
    server, cold = provision()
    cold_create = create(server)
    print(f"warm-up (worker and runtime just started): (a) {cold['total']:.1f} ms,"
          f" (b) {cold_create['total']:.1f} ms")  # fmt: skip
    provisioned = [provision() for _ in range(runs)]
    print(
        summary(
            "(a) Provision a sandbox -> healthy          ", [t["total"] for _, t in provisioned]
        )
    )
    for key, label in (
        ("request", "provision_sandbox (row, key pair)"),
        ("check", "queued -> healthy (the worker)   "),
    ):
        print("    " + summary(label, [t[key] for _, t in provisioned]))
    created = [create(server) for server, _ in provisioned]
    print(summary("(b) Create service -> first successful query", [c["total"] for c in created]))
    print("    (the deploy's own timestamps, and this process's clock)")
    for key, label in (
        ("pickup", "queued -> claimed by a worker    "),
        ("run", "claimed -> finished (the worker) "),
        ("query", "finished -> query answered       "),
    ):
        print("    " + summary(label, [c[key] for c in created]))
    refused = sum(int(c["refused"]) for c in created)
    if refused:
        print(f"    the endpoint refused {refused} queries after its deploy had succeeded")
    print("target: under 2000 ms each")


@contextlib.contextmanager
def runtime_and_worker(config: Path, port: int, env: dict[str, str]) -> Iterator[None]:
    """The runtime on `port` with the config file, and a worker as `make run` starts it
    (prefork, concurrency 2) on `env`'s CELERY_QUEUE; both stopped on exit."""
    processes = []
    try:
        runtime = subprocess.Popen(
            [sys.executable, "-m", "runtime", "--config", str(config), "--host", "127.0.0.1",
             "--log-level", "warning"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        processes.append(runtime)
        devstack.wait_for_port(port, runtime, "the runtime")
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cloud", "worker", "--concurrency", "2",
             "--queues", env["CELERY_QUEUE"], "--loglevel", "WARNING", "--without-gossip",
             "--without-mingle"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        processes.append(worker)
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)


def runtime_config(database_url: str, redis_url: str, public_pem: str, port: int) -> dict:
    return {
        "port": port,
        "managementPublicKey": public_pem,
        "databases": {"default": devstack.runtime_database(database_url)},
        "redisUrl": redis_url,
        "sandbox": {"rate": 10, "perSeconds": 10, "maxWaiting": 25, "storageMb": 100},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    import psycopg
    import yaml
    from cryptography.fernet import Fernet

    with devstack.services("refract") as env:
        parts = urlsplit(env["DATABASE_URL"])
        database = f"refract_bench_{secrets.token_hex(3)}"
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        database_url = urlunsplit(parts._replace(path=f"/{database}"))
        scratch = Path(tempfile.mkdtemp(prefix="refract-bench-"))
        key_file, public_pem = devstack.platform_key(scratch / "platform-key.pem")
        private_pem = key_file.read_text()
        port = devstack.free_port()
        runtime_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in env.items() if k != "PLATFORM_PRIVATE_KEY_FILE"},
            "DATABASE_URL": database_url,
            "PLATFORM_PRIVATE_KEY": private_pem,
            "SANDBOX_REGIONS": f"bench={runtime_url}",
            "CELERY_QUEUE": f"bench-{secrets.token_hex(4)}",
            "LOG_LEVEL": "WARNING",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloud.settings")
        config = scratch / "runtime.yml"
        config.write_text(yaml.safe_dump(runtime_config(database_url, env["REDIS_URL"],
                                                        public_pem, port)))  # fmt: skip
        try:
            with runtime_and_worker(config, port, env):
                bench(args.runs, runtime_url)
        finally:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
