"""The runtime as a real process against a real PostgreSQL database.

`DATABASE_URL` (set by `make test`, possibly a unix-socket URL with `?host=/dir`) names the
server; each test session creates its own database `refract_rt_<random>` there and drops it at
the end. Runtimes are started with `python -m runtime` on a free loopback port and a
`PRISMA_CONFIG` in Prisma's own format.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jwt
import psycopg
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parents[2]
MANAGEMENT_SECRET = "refract-test-management-secret-0123456789"


@dataclass(frozen=True)
class Database:
    """Connection parameters of the session's database, in Prisma config terms."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def conninfo(self, database: str | None = None) -> str:
        return make_conninfo(
            host=self.host,
            port=str(self.port),
            user=self.user,
            password=self.password or None,
            dbname=database or self.database,
        )

    def prisma_config(self) -> dict[str, Any]:
        return {
            "connector": "postgres",
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": self.database,
        }

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(), autocommit=True)

    def tables(self, schema: str) -> set[str]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [schema],
            )
            return {r[0] for r in rows}

    def columns(self, schema: str, table: str) -> dict[str, tuple[str, bool]]:
        """column -> (data type, nullable)"""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s",
                [schema, table],
            )
            return {r[0]: (r[1], r[2]) for r in rows}

    def schemas(self) -> set[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT schema_name FROM information_schema.schemata")
            return {r[0] for r in rows}


@pytest.fixture(scope="session")
def database() -> Iterator[Database]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail("DATABASE_URL is not set (make test sets it)")
    params = conninfo_to_dict(url)
    base = Database(
        host=str(params.get("host") or "localhost"),
        port=int(params.get("port") or 5432),
        user=str(params.get("user") or "postgres"),
        password=str(params.get("password") or ""),
        database=f"refract_rt_{secrets.token_hex(5)}",
    )
    # CREATE/DROP DATABASE go through the maintenance database, which every server has.
    with psycopg.connect(base.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(base.database)))
    try:
        yield base
    finally:
        with psycopg.connect(base.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(base.database)
                )
            )


@dataclass(frozen=True)
class KeyPair:
    private_pem: str
    public_pem: str


def make_key_pair() -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return KeyPair(private_pem, public_pem)


@pytest.fixture(scope="session")
def key_pair() -> KeyPair:
    return make_key_pair()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Runtime:
    """A running `python -m runtime` process and a small client for it."""

    url: str
    process: subprocess.Popen
    log: Path
    config: dict[str, Any] = field(default_factory=dict)

    def post(
        self, path: str, payload: Any, token: str | None = None, raw: bytes | None = None
    ) -> Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
                status, answer_headers, body = answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            status, answer_headers, body = error.code, dict(error.headers), error.read()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode()
        return Response(status, {k.lower(): v for k, v in answer_headers.items()}, parsed)

    def get(self, path: str) -> Response:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:  # noqa: S310 - loopback
            return Response(answer.status, dict(answer.headers), answer.read().decode())

    def management(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        response = self.post("/management", payload, token=token)
        assert response.status == 200, response.body
        return response.body


def management_token(
    secret: str = MANAGEMENT_SECRET,
    grants: list[dict[str, str]] | None = None,
    expires_in: int = 3600,
    algorithm: str = "HS256",
) -> str:
    now = int(time.time())
    claims = {
        "grants": grants if grants is not None else [{"target": "*/*", "action": "*"}],
        "iat": now,
        "exp": now + expires_in,
    }
    return jwt.encode(claims, secret, algorithm=algorithm)


@contextlib.contextmanager
def run_runtime(
    config: dict[str, Any],
    log_dir: Path,
    args: tuple[str, ...] = (),
    host: str = "127.0.0.1",
    extra_hosts: tuple[str, ...] = (),
    port: int | None = None,
) -> Iterator[Runtime]:
    """The runtime on a free port of `host`, a loopback address (127.0.0.2 is one the Prisma
    CLI does not count as local), and on the same port of each of `extra_hosts` (loopback
    addresses such as 127.0.0.3: Linux does not route them to a socket bound on 127.0.0.1)."""
    port = port or free_port()
    config = {**config, "port": port}
    log = log_dir / f"runtime-{port}.log"
    env = {**os.environ, "PRISMA_CONFIG": yaml.safe_dump(config)}
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runtime",
                "--host",
                host,
                *[arg for extra in extra_hosts for arg in ("--host", extra)],
                "--log-level",
                "warning",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    runtime = Runtime(f"http://{host}:{port}", process, log, config)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the runtime exited early:\n{log.read_text()}")
            with contextlib.suppress(OSError):
                if runtime.get("/status").body == "OK":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the runtime did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield runtime
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def runtime(
    database: Database, key_pair: KeyPair, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """The secured runtime most tests use: HS256 management secret and an RS256 public key."""
    config = {
        "managementApiSecret": MANAGEMENT_SECRET,
        "managementPublicKey": key_pair.public_pem,
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path_factory.mktemp("runtime")) as running:
        yield running


@pytest.fixture
def token() -> str:
    return management_token()


@pytest.fixture
def service_name() -> str:
    """A fresh service name per test, so tests never see each other's projects."""
    return f"svc{secrets.token_hex(4)}"


T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a thread of its own: in a full run, a browser test's Playwright holds
    the main thread's event loop, where `asyncio.run` refuses to start another."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()
