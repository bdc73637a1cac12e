"""Data requests planned once and then run on the event loop, through a real runtime process.

A request whose document the runtime has compiled before runs on the event loop's own pool
(connections named `refract-runtime-loop`); a new document runs in a worker thread. Both must
answer alike, check the service token alike and survive a database restart.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from psycopg import sql

from tests.runtime.conftest import Database, Runtime, run_runtime

pytestmark = [pytest.mark.multiprocess]

SECRET = "loop-path-secret-0123456789-0123456789"
DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String
  age: Int
  joined: DateTime
  posts: [Post!]!
}
type Post {
  id: ID! @id
  title: String!
  author: User! @relation(link: INLINE)
}
"""
ADD = """mutation($name: String!, $secrets: [String!]) {
  addProject(input: {name: $name, stage: "dev", secrets: $secrets}) { project { name } }
}"""
DEPLOY = """mutation($name: String!, $types: String!, $secrets: [String!]) {
  deploy(input: {name: $name, stage: "dev", types: $types, secrets: $secrets}) {
    errors { description }
  }
}"""


@pytest.fixture
def own_database(database: Database) -> Iterator[Database]:
    """A database of this test's own, so terminating its connections spares other tests."""
    own = Database(
        database.host,
        database.port,
        database.user,
        database.password,
        f"{database.database}_loop_{secrets.token_hex(3)}",
    )
    yield own
    with psycopg.connect(database.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(own.database))
        )


@pytest.fixture
def service(own_database: Database, tmp_path: Path) -> Iterator[tuple[Runtime, str]]:
    """An open runtime (no management secret) with one service protected by SECRET."""
    config = {"databases": {"default": own_database.prisma_config()}}
    with run_runtime(config, tmp_path) as runtime:
        runtime.management(ADD, {"name": "shop", "secrets": [SECRET]})
        deployed = runtime.management(
            DEPLOY, {"name": "shop", "types": DATAMODEL, "secrets": [SECRET]}
        )
        assert deployed["data"]["deploy"]["errors"] == [], deployed
        token = jwt.encode({"data": {"service": "shop@dev"}}, SECRET, "HS256")
        yield runtime, token


def without_request_ids(answer: Any) -> Any:
    """An answer without the request ids in its errors, which differ by request."""
    if isinstance(answer, list):
        return [without_request_ids(item) for item in answer]
    if isinstance(answer, dict):
        return {k: without_request_ids(v) for k, v in answer.items() if k != "requestId"}
    return answer


def loop_statements(database: Database) -> list[str]:
    """The last statement of each of the event loop's connections."""
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'refract-runtime-loop'",
            [database.database],
        ).fetchall()
    return [r[0] for r in rows]


def terminate_connections(database: Database) -> int:
    """What a database restart does to the runtime's connections."""
    with database.connect() as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database.database],
        ).fetchone()[0]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            left = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                "pg_backend_pid()",
                [database.database],
            ).fetchone()[0]
            if not left:
                break
            time.sleep(0.02)
    return killed


def test_requests_answer_alike_in_a_thread_and_on_the_loop(
    service: tuple[Runtime, str], own_database: Database
):
    runtime, token = service

    def post(payload: object) -> Any:
        response = runtime.post("/shop/dev", payload, token)
        assert response.status == 200, response.body
        return without_request_ids(response.body)

    create = """mutation($email: String!, $age: Int) {
      createUser(data: {email: $email, name: "Ada", age: $age, posts: {create: {title: "Hi"}}}) {
        email age posts { title }
      }
    }"""
    # Each request thrice: the first plans it in a worker thread, the others run on the loop.
    for n in range(3):
        assert post({"query": create, "variables": {"email": f"u{n}@x.io", "age": n}}) == {
            "data": {"createUser": {"email": f"u{n}@x.io", "age": n, "posts": [{"title": "Hi"}]}}
        }
    duplicate = {"query": create, "variables": {"email": "u0@x.io"}}
    answers = [post(duplicate) for _ in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["errors"][0]["code"] == 3010
    assert post({"query": "{ usersConnection { aggregate { count } } }"}) == {
        "data": {"usersConnection": {"aggregate": {"count": 3}}}
    }  # the failed creates left nothing behind

    queries = [
        {
            "query": "query($min: Int) { users(where: {age_gte: $min}, "
            "orderBy: age_ASC) { loopMarker: email posts { title } } }",
            "variables": {"min": 1},
        },
        {"query": 'query { user(where: {email: "u2@x.io"}) { age } }'},
        {
            "query": "query($d: DateTime) { users(where: {joined_lt: $d}) { id } }",
            "variables": {"d": "not a date"},
        },
        [{"query": "{ posts { title } }"}, {"query": "{ users(first: 1) { email } }"}],
        {"query": 'mutation { updateManyUsers(data: {name: "Grace"}) { count } }'},
    ]
    for payload in queries:
        answers = [post(payload) for _ in range(3)]
        assert answers[0] == answers[1] == answers[2], payload
    assert post(queries[0]) == {
        "data": {
            "users": [
                {"loopMarker": "u1@x.io", "posts": [{"title": "Hi"}]},
                {"loopMarker": "u2@x.io", "posts": [{"title": "Hi"}]},
            ]
        }
    }
    assert "errors" in post(queries[2])  # a bad DateTime is refused the same way
    # The repeated query really ran on the event loop's pool.
    post(queries[0])
    assert any("loopMarker" in statement for statement in loop_statements(own_database))


def test_the_service_token_is_checked_on_the_loop_too(service: tuple[Runtime, str]):
    runtime, token = service
    query = {"query": "{ users { id } }"}
    for _ in range(3):
        assert runtime.post("/shop/dev", query, token).body == {"data": {"users": []}}
    other_secret = "another-secret-0123456789-0123456789"
    wrong = jwt.encode({"data": {"service": "shop@dev"}}, other_secret, "HS256")
    for bad in (None, wrong, "not-a-jwt"):
        answer = runtime.post("/shop/dev", query, bad).body
        assert answer["errors"][0]["code"] == 3015, (bad, answer)
    assert runtime.post("/shop/dev", query, token).body == {"data": {"users": []}}


def test_a_database_restart_fails_no_request(service: tuple[Runtime, str], own_database: Database):
    runtime, token = service
    query = {"query": "{ usersConnection { aggregate { count } } }"}
    create = {
        "query": "mutation($e: String!) { createUser(data: {email: $e}) { email } }",
        "variables": {"e": "before@x.io"},
    }
    for _ in range(3):
        runtime.post("/shop/dev", query, token)
    assert runtime.post("/shop/dev", create, token).body["data"]["createUser"]
    assert runtime.post("/shop/dev", create, token).body["errors"][0]["code"] == 3010

    assert terminate_connections(own_database) >= 2  # the loop's and the threads' connections

    count = runtime.post("/shop/dev", query, token)  # a known query: retried on the loop
    assert count.status == 200
    assert count.body == {"data": {"usersConnection": {"aggregate": {"count": 1}}}}
    created = runtime.post("/shop/dev", {**create, "variables": {"e": "after@x.io"}}, token)
    assert created.body == {"data": {"createUser": {"email": "after@x.io"}}}
    fresh = runtime.post("/shop/dev", {"query": "{ posts { id } }"}, token)  # a new document
    assert fresh.body == {"data": {"posts": []}}
    info = runtime.management("{ listProjects { name } }")  # the threads' pool
    assert info == {"data": {"listProjects": [{"name": "shop"}]}}
    assert "Traceback" not in runtime.log.read_text()
