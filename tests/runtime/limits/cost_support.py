"""A service built to make queries expensive: users and posts, every user an author of every
post, so each level of `posts { authors { ... } }` multiplies the work by `SIDE`."""

from __future__ import annotations

import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import psycopg

from tests.runtime.conftest import Database, Runtime
from tests.runtime.management.test_management_api import add, deploy

SIDE = 40
DATAMODEL = """
type User { id: ID! @id  name: String!  posts: [Post] @relation(name: "Authors") }
type Post { id: ID! @id  title: String!  authors: [User] @relation(name: "Authors") }
"""
# Four levels back and forth: SIDE**4 innermost lists to search for each user, minutes of work
# for PostgreSQL, in little memory (the innermost lists are empty). For a `$name` no user has
# it costs nothing (and compiles the same statement, which the event loop then runs).
EXPENSIVE = (
    "query($name: String) { users(where: {name: $name}) { posts { authors { posts { authors {"
    ' posts(where: {title: "none"}) { id } } } } } } }'
)
# Three levels (SIDE**3 authors, about 3 MB of JSON): a second of work, a large answer.
LARGE = "{ users { name posts { title authors { id name } } } }"


def make_service(runtime: Runtime, name: str) -> str:
    add(runtime, "", name)
    deploy(runtime, "", name, DATAMODEL)
    base = f"/{name}/dev"
    users = [{"_typeName": "User", "id": f"u{i}", "name": f"user {i}"} for i in range(SIDE)]
    posts = [{"_typeName": "Post", "id": f"p{i}", "title": f"post {i}"} for i in range(SIDE)]
    for values in (users, posts):
        assert runtime.post(f"{base}/import", {"valueType": "nodes", "values": values}).body == []
    links = [
        [
            {"_typeName": "Post", "id": f"p{p}", "fieldName": "authors"},
            {"_typeName": "User", "id": f"u{u}", "fieldName": "posts"},
        ]
        for u in range(SIDE)
        for p in range(SIDE)
    ]
    answer = runtime.post(f"{base}/import", {"valueType": "relations", "values": links})
    assert answer.body == []
    return base


def open_request(runtime: Runtime, path: str, payload: Any) -> socket.socket:
    """Send a request on a raw socket and leave it waiting for its answer."""
    address = urlsplit(runtime.url)
    body = json.dumps(payload).encode()
    sock = socket.create_connection((address.hostname, address.port))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    return sock


def running(database: Database, service: str) -> list[tuple[int, str]]:
    """(pid, application_name) of the backends running a statement of the service."""
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity WHERE state = 'active' "
            "AND datname = current_database() AND pid <> pg_backend_pid() "
            "AND position(%s in query) > 0",
            [f'"{service}$dev"'],
        ).fetchall()
    return [(pid, name) for pid, name in rows]


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    """Poll until `condition()` is truthy; fail after a generous `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def terminate(database: Database, pids: list[int]) -> None:
    with psycopg.connect(database.conninfo(), autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
