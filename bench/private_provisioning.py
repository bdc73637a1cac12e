"""A private server, timed from "Create private server" to healthy through a real Celery worker
and the platform runtime's operator API (issue 12):

    .venv/bin/python bench/private_provisioning.py [--runs 10]

(a) from `private.create_private_server` (which first connects to the user's database:
    "Test connection" as part of the click) to the server's status healthy;
(b) from "Delete server" (`services.delete_server`) to the row gone and the runtime no longer
    serving the host.
Target for (a): under 3 s on this machine. Prints median and max, and where the time of (a)
goes: the request (database check, key pair, row) and the worker's run (operator PUT, then
serverInfo and listProjects under the server's host name).

Starts (or uses, from DATABASE_URL/REDIS_URL) PostgreSQL and Redis, creates a scratch database
`refract_bench_<random>` for the console and the runtime and, for the user, a role with a
password and a database of its own (both dropped at the end). The runtime runs with an
`operator` block (a fresh platform key pair and Fernet key); the servers' endpoints are
`http://<name>-<workspace>.servers.bench:<port>`, which need no DNS: the console reaches them at
the runtime's address under their host names, as it does in production.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.servers import runtime_and_worker  # noqa: E402
from cloud import devstack  # noqa: E402


def wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)


def summary(label: str, samples: list[float]) -> str:
    return f"{label}: median {statistics.median(samples):7.1f} ms   max {max(samples):7.1f} ms"


def bench(runs: int, user_db: dict[str, object]) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts import services as accounts
    from servers import private, services
    from servers.management_api import PrismaError
    from servers.models import Server
    from servers.private import DatabaseParams

    call_command("migrate", verbosity=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # no sign-up mail
    email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
    user = accounts.sign_up(email=email, name="Bench", password=password)
    assert user is not None
    params = DatabaseParams(**user_db)  # type: ignore[arg-type]

    def create() -> tuple[Server, dict[str, float]]:
        slug = f"b{secrets.token_hex(3)}"
        workspace = accounts.create_workspace(user=user, name=f"Bench {slug}", slug=slug)
        started = time.perf_counter()
        server = private.create_private_server(user, workspace, "db", params)
        answered = time.perf_counter()
        wait(
            lambda: (
                Server.objects.filter(id=server.id)
                .exclude(status=Server.Status.PROVISIONING)
                .exists()
            ),
            "provisioning",
        )
        ended = time.perf_counter()
        server.refresh_from_db()
        if server.status != Server.Status.HEALTHY:
            raise SystemExit(f"private server {server.status}: {server.status_reason}")
        return server, {
            "total": (ended - started) * 1000,
            "request": (answered - started) * 1000,
            "worker": (ended - answered) * 1000,
        }

    def unknown_host(server: Server) -> bool:
        try:
            server.management_client().server_info()
        except PrismaError as error:
            return "Unknown host" in str(error)
        return False

    def delete(server: Server) -> float:
        started = time.perf_counter()
        services.delete_server(user, server)
        wait(lambda: not Server.objects.filter(id=server.id).exists(), "deletion")
        ended = time.perf_counter()
        if not unknown_host(server):
            raise SystemExit("the runtime still serves a deleted server's host")
        return (ended - started) * 1000

    print(f"{runs} runs; worker: prefork, concurrency 2; runtime {settings.PRIVATE_SERVER_RUNTIME}")
    warm, cold = create()
    cold_delete = delete(warm)
    print(f"warm-up (worker and runtime just started): (a) {cold['total']:.1f} ms,"
          f" (b) {cold_delete:.1f} ms")  # fmt: skip
    created = [create() for _ in range(runs)]
    print(summary("(a) Create private server -> healthy", [t["total"] for _, t in created]))
    for key, label in (
        ("request", "request (database check, row)"),
        ("worker", "queued -> healthy (the worker)"),
    ):
        print("    " + summary(label, [t[key] for _, t in created]))
    deleted = [delete(server) for server, _ in created]
    print(summary("(b) Delete server -> gone         ", deleted))
    print("target: (a) under 3000 ms")


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
        user_db = {
            "host": parts.hostname or "127.0.0.1",
            "port": parts.port or 5432,
            "database": f"{database}_user",
            "user": f"{database}_user",
            "password": secrets.token_urlsafe(16),
            "sslmode": "prefer",
        }
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
            conn.execute(
                f"CREATE ROLE \"{user_db['user']}\" LOGIN PASSWORD '{user_db['password']}'"
            )
            conn.execute(f'CREATE DATABASE "{user_db["database"]}" OWNER "{user_db["user"]}"')
        database_url = urlunsplit(parts._replace(path=f"/{database}"))
        scratch = Path(tempfile.mkdtemp(prefix="refract-bench-"))
        key_file, public_pem = devstack.platform_key(scratch / "platform-key.pem")
        port = devstack.free_port()
        runtime_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in env.items() if k != "PLATFORM_PRIVATE_KEY_FILE"},
            "DATABASE_URL": database_url,
            "PLATFORM_PRIVATE_KEY": key_file.read_text(),
            "PRIVATE_SERVER_RUNTIME": runtime_url,
            # The user's database is a scratch one on the platform's own server here.
            "PRIVATE_DATABASE_DENY": "",
            "PRIVATE_SERVER_ENDPOINT": f"http://{{server}}.servers.bench:{port}",
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
        config.write_text(
            yaml.safe_dump(
                {
                    "port": port,
                    "hosts": ["127.0.0.1", "localhost"],
                    "managementPublicKey": public_pem,
                    "operator": {
                        "publicKey": public_pem,
                        "encryptionKey": Fernet.generate_key().decode(),
                    },
                    "databases": {"default": devstack.runtime_database(database_url)},
                }
            )
        )
        try:
            with runtime_and_worker(config, port, env):
                bench(args.runs, user_db)
        finally:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                for name in (database, user_db["database"]):
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'DROP ROLE IF EXISTS "{user_db["user"]}"')


if __name__ == "__main__":
    main()
