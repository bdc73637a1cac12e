"""The operator API: servers (private servers, each on its user's own database) registered in a
running runtime, seen by every runtime process on the same database, real processes throughout."""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.fernet import Fernet
from psycopg import sql

from tests.runtime.conftest import (
    Database,
    KeyPair,
    Response,
    Runtime,
    make_key_pair,
    run_runtime,
)

pytestmark = [pytest.mark.multiprocess]

AUDIENCE = "refract-operator"
USER = "type User { id: ID! @id  email: String! @unique  name: String! }"
ADD = """mutation($name: String!, $stage: String!) {
  addProject(input: {name: $name, stage: $stage}) { project { name } }
}"""
DEPLOY = """mutation($name: String!, $stage: String!, $types: String!) {
  deploy(input: {name: $name, stage: $stage, types: $types}) {
    errors { description } migration { status }
  }
}"""


@dataclass(frozen=True)
class Platform:
    """The platform's key pair (signs operator tokens) and the registry's encryption key."""

    keys: KeyPair
    fernet_key: str

    def token(self, expires_in: int = 300, audience: str | None = AUDIENCE, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iat": now, "exp": now + expires_in, **claims}
        if audience is not None:
            payload["aud"] = audience
        return jwt.encode(payload, self.keys.private_pem, algorithm="RS256")


@pytest.fixture(scope="module")
def platform() -> Platform:
    return Platform(make_key_pair(), Fernet.generate_key().decode())


@pytest.fixture(scope="module")
def config(database: Database, platform: Platform) -> dict[str, Any]:
    return {
        "hosts": ["127.0.0.1", "localhost"],
        "managementPublicKey": platform.keys.public_pem,
        "operator": {
            "publicKey": platform.keys.public_pem,
            "encryptionKey": platform.fernet_key,
            "idleSeconds": 2,
        },
        "databases": {"default": database.prisma_config()},
    }


@pytest.fixture(scope="module")
def first(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    with run_runtime(config, tmp_path_factory.mktemp("first")) as running:
        yield running


@pytest.fixture(scope="module")
def second(config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """Another runtime on the same database: two worker processes, also listening on
    127.0.0.3, the address a private server gets in the first test."""
    with run_runtime(
        config,
        tmp_path_factory.mktemp("second"),
        args=("--workers", "2"),
        extra_hosts=("127.0.0.3",),
    ) as running:
        yield running


def call(
    url: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    host: str | None = None,
) -> Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if host is not None:
        headers["Host"] = host
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode()
    return Response(status, {}, parsed)


def operator(runtime: Runtime, platform: Platform, method: str, path: str, body: Any = None):
    return call(runtime.url, method, f"/_operator/servers{path}", body, platform.token())


def eventually(check: Callable[[], Any], seconds: float = 15) -> Any:
    """The check's first truthy answer; registry changes reach other processes within a second
    or two, so the deadline only guards against a hang."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@dataclass
class UserDatabase:
    """A user's own database and role, as a private server's owner would give them."""

    admin: Database
    user: str
    password: str
    name: str

    def entry(self) -> dict[str, Any]:
        return {
            "host": self.admin.host,
            "port": self.admin.port,
            "user": self.user,
            "password": self.password,
            "database": self.name,
            "sslmode": "disable",
        }

    def uri(self) -> str:
        return (
            f"postgresql://{self.user}:{self.password}@{self.admin.host}:{self.admin.port}/"
            f"{self.name}?sslmode=disable"
        )

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.admin.conninfo(self.name), autocommit=True)

    def connections(self) -> int:
        with self.admin.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND usename = %s",
                [self.name, self.user],
            ).fetchone()
            return row[0]


@pytest.fixture
def user_database(database: Database) -> Iterator[Callable[[], UserDatabase]]:
    made: list[UserDatabase] = []

    def make() -> UserDatabase:
        suffix = secrets.token_hex(4)
        user = UserDatabase(database, f"op_user_{suffix}", secrets.token_hex(8), f"op_db_{suffix}")
        with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(user.user), sql.Literal(user.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(user.name), sql.Identifier(user.user)
                )
            )
        made.append(user)
        return user

    yield make
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
        for user in made:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(user.name))
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user.user)))


@dataclass
class Private:
    """A registered server as its user reaches it: its host name and its own key pair."""

    name: str
    host: str
    keys: KeyPair

    def body(self, database: dict[str, Any] | str, **extra: Any) -> dict[str, Any]:
        entry = database if isinstance(database, dict) else {"uri": database}
        return {
            "hosts": [self.host],
            "database": entry,
            "managementPublicKey": self.keys.public_pem,
            **extra,
        }

    def token(self) -> str:
        return jwt.encode(
            {
                "grants": [{"target": "*/*", "action": "*"}],
                "exp": int(time.time()) + 300,
            },
            self.keys.private_pem,
            algorithm="RS256",
        )

    def management(self, runtime: Runtime, query: str, variables: Any = None) -> Response:
        body = {"query": query, "variables": variables or {}}
        return call(runtime.url, "POST", "/management", body, self.token(), self.host)

    def deploy(self, runtime: Runtime, service: str, types: str = USER) -> None:
        added = self.management(runtime, ADD, {"name": service, "stage": "dev"})
        assert added.status == 200 and "errors" not in added.body, added.body
        answer = self.management(runtime, DEPLOY, {"name": service, "stage": "dev", "types": types})
        assert answer.status == 200, answer.body
        assert answer.body["data"]["deploy"]["errors"] == [], answer.body
        assert answer.body["data"]["deploy"]["migration"]["status"] == "SUCCESS", answer.body

    def data(self, runtime: Runtime, service: str, query: str, **variables: Any) -> Any:
        body = {"query": query, "variables": variables}
        answer = call(runtime.url, "POST", f"/{service}/dev", body, host=self.host)
        assert answer.status == 200, answer.body
        assert "errors" not in answer.body, answer.body
        return answer.body["data"]


def private(host: str | None = None) -> Private:
    name = f"acme-{secrets.token_hex(3)}"
    return Private(name, host or f"{name}.servers.test", make_key_pair())


def test_a_server_added_through_one_process_is_served_by_another_and_survives_a_restart(
    first: Runtime,
    second: Runtime,
    platform: Platform,
    user_database: Callable[[], UserDatabase],
    config: dict[str, Any],
    tmp_path: Path,
) -> None:
    server = private(host="127.0.0.3")
    owned = user_database()
    added = operator(first, platform, "PUT", f"/{server.name}", server.body(owned.uri()))
    assert added.status == 201, added.body
    assert added.body["database"] == {
        "host": owned.admin.host,
        "port": owned.admin.port,
        "user": owned.user,
        "database": owned.name,
        "sslmode": "disable",
        "connectionLimit": 4,
    }
    assert "password" not in json.dumps(added.body) and owned.password not in json.dumps(added.body)

    # The second process (two workers) answers on the server's own address.
    at_its_address = Runtime(
        second.url.replace("127.0.0.1", "127.0.0.3"), second.process, second.log
    )
    listing = "{ listProjects { name } }"

    def served() -> bool:
        answer = call(at_its_address.url, "POST", "/management", {"query": listing}, server.token())
        return answer.status == 200 and answer.body == {"data": {"listProjects": []}}

    assert eventually(served)
    # Its default server does not answer there, nor the private server on the default's host.
    assert (
        call(second.url, "POST", "/management", {"query": listing}, server.token())
        .body["errors"][0]["message"]
        .startswith("Authentication token is invalid")
    )

    # A runtime stopped and started again on its port still knows the server.
    with run_runtime(config, tmp_path) as before:
        port = int(before.url.rsplit(":", 1)[1])
        assert operator(before, platform, "GET", f"/{server.name}").status == 200
    with run_runtime(config, tmp_path, port=port) as again:
        answer = call(
            again.url, "POST", "/management", {"query": listing}, server.token(), "127.0.0.3"
        )
        assert answer.body == {"data": {"listProjects": []}}
        fetched = operator(again, platform, "GET", f"/{server.name}")
        assert fetched.status == 200
        assert fetched.body["createdAt"] == added.body["createdAt"]

        removed = operator(again, platform, "DELETE", f"/{server.name}")
        assert removed.status == 200 and removed.body == {"deleted": server.name}
        assert operator(again, platform, "DELETE", f"/{server.name}").status == 404
        assert operator(again, platform, "GET", f"/{server.name}").status == 404

    def gone() -> bool:
        answer = call(at_its_address.url, "POST", "/management", {"query": listing}, server.token())
        return answer.status == 404 and answer.body == {"errors": [{"message": "Unknown host"}]}

    assert eventually(gone)


@pytest.fixture
def runtime_a(first: Runtime) -> Runtime:
    return first


def test_only_operator_tokens_signed_by_the_platform_are_accepted(
    runtime_a: Runtime, platform: Platform
) -> None:
    url = runtime_a.url + "/_operator/servers"
    other = Platform(make_key_pair(), platform.fernet_key)
    refused = {
        "no token": None,
        "another key": other.token(),
        "expired": platform.token(expires_in=-60),
        "a management token (no aud)": platform.token(
            audience=None, grants=[{"target": "*/*", "action": "*"}]
        ),
        "another audience": platform.token(audience="refract-console"),
    }
    for reason, token in refused.items():
        answer = call(url, "GET", "", token=token)
        assert answer.status == 401, reason
        assert answer.body["error"], reason
    assert call(url, "GET", "", token=platform.token()).status == 200

    # An operator token grants nothing on the management API, though the key is the same.
    answer = runtime_a.management("{ listProjects { name } }", token=platform.token())
    assert answer["errors"][0]["code"] == 3015
    management = platform.token(audience=None, grants=[{"target": "*/*", "action": "*"}])
    assert runtime_a.management("{ listProjects { name } }", token=management)["data"]


def test_a_runtime_without_an_operator_block_has_no_operator_api(
    runtime: Runtime, platform: Platform
) -> None:
    answer = call(runtime.url, "GET", "/_operator/servers", token=platform.token())
    assert answer.status == 404


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("no hosts", {"hosts": []}, "hosts"),
    ("a bad host name", {"hosts": ["exa mple.com"]}, "hosts"),
    ("an unknown key", {"color": "blue"}, "color"),
    (
        "a bad PEM",
        {"managementPublicKey": "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----"},
        "managementPublicKey",
    ),
    ("not a PEM", {"managementPublicKey": "ssh-rsa AAAA"}, "managementPublicKey"),
    (
        "a bad sslmode",
        {"database": {"host": "h", "user": "u", "database": "d", "sslmode": "always"}},
        "database.sslmode",
    ),
    (
        "an unknown database key",
        {"database": {"uri": "postgresql://u@h/d", "schema": "x"}},
        "database.schema",
    ),
    ("a uri of another kind", {"database": {"uri": "mysql://u@h/d"}}, "database.uri"),
    ("no database user", {"database": {"host": "h", "database": "d"}}, "database.user"),
    (
        "a tiny connection limit",
        {"database": {"uri": "postgresql://u@h/d", "connectionLimit": 1}},
        "database.connectionLimit",
    ),
    ("an unknown limit", {"limits": {"rate": 10}}, "limits.rate"),
    ("a negative limit", {"limits": {"requestBytes": -1}}, "limits.requestBytes"),
]


@pytest.mark.parametrize(("case", "change", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_entries_get_a_400_naming_the_field(
    runtime_a: Runtime, platform: Platform, case: str, change: dict[str, Any], field: str
) -> None:
    server = private()
    body = {**server.body("postgresql://u:p@127.0.0.1:5432/d"), **change}
    answer = operator(runtime_a, platform, "PUT", f"/{server.name}", body)
    assert answer.status == 400, (case, answer.body)
    assert answer.body["field"] == field and answer.body["error"], answer.body
    assert operator(runtime_a, platform, "GET", f"/{server.name}").status == 404


def test_bad_names_bodies_and_taken_hosts_are_refused(
    runtime_a: Runtime, platform: Platform
) -> None:
    server = private()
    uri = "postgresql://u:p@127.0.0.1:5432/d"
    bad_name = operator(runtime_a, platform, "PUT", "/Bad_Name", server.body(uri))
    assert bad_name.status == 400 and bad_name.body["field"] == "name"
    raw = urllib.request.Request(  # noqa: S310
        f"{runtime_a.url}/_operator/servers/{server.name}",
        data=b"{not json",
        method="PUT",
        headers={"Authorization": f"Bearer {platform.token()}"},
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(raw, timeout=30)  # noqa: S310 - loopback
    assert error.value.code == 400

    # A host the runtime's own server answers on, or another server's host: 409.
    own = operator(
        runtime_a, platform, "PUT", f"/{server.name}", {**server.body(uri), "hosts": ["localhost"]}
    )
    assert own.status == 409 and own.body["field"] == "hosts"
    assert operator(runtime_a, platform, "PUT", f"/{server.name}", server.body(uri)).status == 201
    other = private(host=server.host)
    taken = operator(runtime_a, platform, "PUT", f"/{other.name}", other.body(uri))
    assert taken.status == 409 and server.name in taken.body["error"]
    # Putting it again as it is changes nothing; replacing it (its own hosts kept) answers 200.
    same = operator(runtime_a, platform, "PUT", f"/{server.name}", server.body(uri))
    assert same.status == 200
    assert same.body["createdAt"] == same.body["updatedAt"]
    changed = server.body(uri, limits={"statementTimeoutMs": 5000})
    replaced = operator(runtime_a, platform, "PUT", f"/{server.name}", changed)
    assert replaced.status == 200
    assert replaced.body["limits"] == {"statementTimeoutMs": 5000}
    assert replaced.body["createdAt"] != replaced.body["updatedAt"]
    new_password = server.body("postgresql://u:other@127.0.0.1:5432/d", limits=changed["limits"])
    again = operator(runtime_a, platform, "PUT", f"/{server.name}", new_password)
    assert again.body["updatedAt"] != replaced.body["updatedAt"], "a new password is a change"
    listed = operator(runtime_a, platform, "GET", "")
    assert server.name in {s["name"] for s in listed.body["servers"]}
    assert operator(runtime_a, platform, "DELETE", f"/{server.name}").status == 200


def test_a_private_server_deploys_and_writes_into_its_own_database_only(
    runtime_a: Runtime,
    second: Runtime,
    platform: Platform,
    user_database: Callable[[], UserDatabase],
    database: Database,
) -> None:
    """Two servers, each on its own database, with the same service and datamodel: each sees
    only its rows, and the rows are in its user's database, not the runtime's."""
    servers = [private(), private()]
    owned = [user_database(), user_database()]
    service = f"shop{secrets.token_hex(3)}"
    for server, db in zip(servers, owned, strict=True):
        body = server.body(db.entry())
        if server is servers[1]:  # two keys, as while one is rotated out: either verifies
            body["managementPublicKey"] = make_key_pair().public_pem + server.keys.public_pem
        assert operator(runtime_a, platform, "PUT", f"/{server.name}", body).status == 201
        server.deploy(runtime_a, service)
    create = 'mutation($e: String!) { createUser(data: {email: $e, name: "x"}) { email } }'
    for server in servers:
        # Written through the second process (two workers, each polling the registry): until
        # the answering worker knows the server, the write is refused as for an unknown host.
        body = {"query": create, "variables": {"e": f"{server.name}@example.com"}}

        def written(s: Private = server, body: dict[str, Any] = body) -> Response | None:
            answer = call(second.url, "POST", f"/{service}/dev", body, host=s.host)
            return None if answer.status == 404 else answer

        answer = eventually(written)
        assert answer is not None and answer.status == 200, answer
        assert "errors" not in answer.body, answer.body
    for server, db in zip(servers, owned, strict=True):
        users = server.data(runtime_a, service, "{ users { email } }")["users"]
        assert users == [{"email": f"{server.name}@example.com"}]
        with db.connect() as conn:
            rows = conn.execute(
                sql.SQL('SELECT email FROM {}."User"').format(sql.Identifier(f"{service}$dev"))
            ).fetchall()
        assert rows == [(f"{server.name}@example.com",)]
    assert f"{service}$dev" not in database.schemas()
    # The server's own key pair is its management API's; the platform's is not.
    platform_management = platform.token(audience=None, grants=[{"target": "*/*", "action": "*"}])
    answer = call(
        runtime_a.url,
        "POST",
        "/management",
        {"query": "{ listProjects { name } }"},
        platform_management,
        servers[0].host,
    )
    assert answer.body["errors"][0]["code"] == 3015
    for server in servers:
        assert operator(runtime_a, platform, "DELETE", f"/{server.name}").status == 200


def test_an_idle_servers_connections_are_closed(
    runtime_a: Runtime, platform: Platform, user_database: Callable[[], UserDatabase]
) -> None:
    server = private()
    owned = user_database()
    assert (
        operator(runtime_a, platform, "PUT", f"/{server.name}", server.body(owned.uri())).status
        == 201
    )
    assert owned.connections() == 0  # nothing is opened before the first request
    server.deploy(runtime_a, "todo")
    assert owned.connections() > 0
    assert operator(runtime_a, platform, "GET", f"/{server.name}").body["open"] is True
    # idleSeconds is 2 in this module's config.
    assert eventually(lambda: owned.connections() == 0)
    assert operator(runtime_a, platform, "GET", f"/{server.name}").body["open"] is False
    # The next request opens them again.
    assert server.data(runtime_a, "todo", "{ users { email } }") == {"users": []}
    assert operator(runtime_a, platform, "DELETE", f"/{server.name}").status == 200
    assert eventually(lambda: owned.connections() == 0)


def test_a_server_whose_database_cannot_be_reached_answers_a_clear_error_alone(
    runtime_a: Runtime, platform: Platform, user_database: Callable[[], UserDatabase]
) -> None:
    broken, healthy = private(), private()
    owned = user_database()
    # This PostgreSQL trusts every password from loopback, so the wrong credential is a role
    # that does not exist: authentication fails the same way.
    wrong = {**owned.entry(), "user": "nobody_" + secrets.token_hex(3)}
    assert operator(runtime_a, platform, "PUT", f"/{broken.name}", broken.body(wrong)).status == 201
    assert (
        operator(runtime_a, platform, "PUT", f"/{healthy.name}", healthy.body(owned.uri())).status
        == 201
    )

    answer = broken.management(runtime_a, "{ listProjects { name } }")
    assert answer.status == 503
    (error,) = answer.body["errors"]
    assert "cannot be reached" in error["message"] and wrong["user"] in error["message"]
    assert error["requestId"]
    data = call(runtime_a.url, "POST", "/svc/dev", {"query": "{ users { id } }"}, host=broken.host)
    assert data.status == 503
    assert healthy.management(runtime_a, "{ listProjects { name } }").body == {
        "data": {"listProjects": []}
    }
    assert runtime_a.get("/status").body == "OK"

    # Fixed through the operator API, the next request succeeds.
    fixed = operator(runtime_a, platform, "PUT", f"/{broken.name}", broken.body(owned.uri()))
    assert fixed.status == 200
    assert broken.management(runtime_a, "{ listProjects { name } }").status == 200
    for server in (broken, healthy):
        assert operator(runtime_a, platform, "DELETE", f"/{server.name}").status == 200


def test_removing_or_replacing_a_server_reaches_every_process(
    first: Runtime,
    config: dict[str, Any],
    platform: Platform,
    user_database: Callable[[], UserDatabase],
    tmp_path: Path,
) -> None:
    """A runtime that would keep a server's connections for minutes drops them when another
    process removes the server, and forgets its services when it is moved to another database."""
    patient = {**config, "operator": {**config["operator"], "idleSeconds": 600}}
    server = private()
    old, new = user_database(), user_database()
    service = f"moved{secrets.token_hex(3)}"
    assert operator(first, platform, "PUT", f"/{server.name}", server.body(old.uri())).status == 201
    server.deploy(first, service)
    create = 'mutation($e: String!) { createUser(data: {email: $e, name: "x"}) { email } }'
    server.data(first, service, create, e="old@example.com")
    with run_runtime(patient, tmp_path) as other:
        assert server.data(other, service, "{ users { email } }") == {
            "users": [{"email": "old@example.com"}]
        }
        # Moved to another database (no such service there yet): the other process forgets
        # what it knew of the service and reads the new database.
        moved = operator(first, platform, "PUT", f"/{server.name}", server.body(new.uri()))
        assert moved.status == 200

        def forgotten() -> bool:
            answer = call(
                other.url,
                "POST",
                f"/{service}/dev",
                {"query": "{ users { email } }"},
                host=server.host,
            )
            return answer.status == 200 and answer.body.get("errors", [{}])[0].get("code") == 3016

        assert eventually(forgotten)
        assert eventually(lambda: old.connections() == 0)
        server.deploy(other, service)
        assert server.data(other, service, "{ users { email } }") == {"users": []}
        assert new.connections() > 0

        # Removed through the first process: the other closes its connections at once,
        # long before its idleSeconds.
        assert operator(first, platform, "DELETE", f"/{server.name}").status == 200
        assert eventually(lambda: new.connections() == 0)
        answer = call(other.url, "GET", "/status", host=server.host)
        assert answer.status == 404 and answer.body == {"errors": [{"message": "Unknown host"}]}
