"""Bearer-key overhead and CLI login latency, against a real console process.

    .venv/bin/python bench/cli_auth.py [--requests 2000]

Starts (or uses, from DATABASE_URL/REDIS_URL) PostgreSQL and Redis, creates a scratch database,
serves the console with gunicorn (one worker, four threads) and prints:
- p50/p99 of `GET /api/v1/me` with a bearer session key and with a session cookie, and the
  difference at p50 (the key check's cost; target under 2 ms);
- the time from clicking Authorize in Chromium to `prisma1 login` holding the key in
  `~/.prisma/config.yml` (target under 1.5 s; the CLI polls every second).
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloud import devstack  # noqa: E402


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(port: int, variants: dict[str, dict[str, str]], count: int) -> dict[str, list]:
    """Latency of `GET /api/v1/me` per header set, interleaved so drift hits all alike."""
    connections = {name: http.client.HTTPConnection("127.0.0.1", port) for name in variants}
    timings: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(count + 50):
        for name, headers in variants.items():
            started = time.perf_counter()
            connections[name].request("GET", "/api/v1/me", headers=headers)
            response = connections[name].getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise SystemExit(f"GET /api/v1/me ({name}) answered {response.status}")
            if index >= 50:  # warm-up
                timings[name].append(elapsed)
    for connection in connections.values():
        connection.close()
    return timings


def create_fixtures() -> tuple[str, str, str, str, str]:
    """A user, a session key and a browser session in the scratch database."""
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command

    from accounts import services, session_keys
    from accounts.models import SessionKey

    call_command("migrate", verbosity=0)
    email, password = f"bench-{secrets.token_hex(4)}@example.com", "bench passphrase 2026"
    user = services.sign_up(email=email, name="Bench", password=password)
    _, token = session_keys.issue(user, name="bench", origin=SessionKey.Origin.API)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "accounts.backends.EmailBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session["signed_in_at"] = session["last_seen"] = int(time.time())
    session.create()
    return email, password, token, settings.SESSION_COOKIE_NAME, session.session_key


def login_latency(port: int, email: str, password: str) -> float:
    from playwright.sync_api import sync_playwright

    from tests.support.prisma_cli import prisma_cli

    home = Path(tempfile.mkdtemp(prefix="refract-bench-home-"))
    config = home / ".prisma" / "config.yml"
    cli = subprocess.Popen(
        [str(prisma_cli()), "login"],
        cwd=home,
        env={"PATH": os.environ["PATH"], "HOME": str(home), "NO_UPDATE_NOTIFIER": "1",
             "STATS_ENDPOINT": "http://127.0.0.1:9/", "BROWSER": "true",
             "CONSOLE_ENDPOINT": "dev", "CLOUD_API_ENDPOINT": f"http://127.0.0.1:{port}/cloud-api"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    path = None
    for line in cli.stdout:
        if "/cli-auth?secret=" in line:
            path = "/cli-auth" + line.split("/cli-auth", 1)[1].split()[0]
            break
    if path is None:
        raise SystemExit("prisma1 login never printed its URL")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=devstack.find_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(base_url=f"http://127.0.0.1:{port}")
        page.goto(path)
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Authorize").wait_for()
        clicked = time.perf_counter()
        page.get_by_role("button", name="Authorize").click()
        while not (config.exists() and "cloudSessionKey" in config.read_text()):
            if time.perf_counter() - clicked > 30:
                raise SystemExit("the CLI never stored the key")
            time.sleep(0.005)
        held = time.perf_counter()
        browser.close()
    cli.wait(timeout=30)
    return held - clicked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--logins", type=int, default=5, help="browser logins to time")
    args = parser.parse_args()
    import psycopg

    with devstack.services("refract") as env:
        parts = urlsplit(env["DATABASE_URL"])
        database = f"refract_bench_{secrets.token_hex(3)}"
        admin_url = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env = {
            **env,
            "DATABASE_URL": urlunsplit(parts._replace(path=f"/{database}")),
            "API_RATE": "1000000/min",  # measure the key check, not the rate limiter
            "LOG_LEVEL": "WARNING",
            # Production settings, minus the HTTPS redirect (the bench speaks plain HTTP).
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloud.settings")
        server = None
        try:
            email, password, key, cookie_name, session = create_fixtures()
            subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
                cwd=ROOT, env=env, check=True,
            )  # fmt: skip
            port = devstack.free_port()
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "cloud.wsgi", "--bind", f"127.0.0.1:{port}",
                 "--workers", "1", "--threads", "4", "--log-level", "warning"],
                cwd=ROOT, env=env,
            )  # fmt: skip
            devstack.wait_for_port(port, server, "gunicorn")
            timings = measure(
                port,
                {
                    "bearer key": {"Authorization": f"Bearer {key}"},
                    "session cookie": {"Cookie": f"{cookie_name}={session}"},
                },
                args.requests,
            )
            with_key, with_cookie = timings["bearer key"], timings["session cookie"]
            print(f"GET /api/v1/me, {args.requests} requests each, one gunicorn worker")
            for label, samples in timings.items():
                print(
                    f"  {label:15s} p50 {statistics.median(samples):6.2f} ms"
                    f"   p99 {percentile(samples, 0.99):6.2f} ms"
                )
            overhead = statistics.median(with_key) - statistics.median(with_cookie)
            print(f"  key check overhead at p50: {overhead:+.2f} ms (target < 2 ms)")
            # The click lands anywhere in the CLI's cycle (a held poll, then a 1 s sleep): one
            # sample says little, so take several.
            latencies = [login_latency(port, email, password) for _ in range(args.logins)]
            print(f"prisma1 login, {args.logins} logins: Authorize click to key in config.yml:"
                  f" median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s"
                  " (target < 1.5 s)")  # fmt: skip
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
