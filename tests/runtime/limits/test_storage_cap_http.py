"""The storage cap through a real runtime: what a write actually adds is held to the cap, on
both dispatch paths, and a service over its cap refuses writes until data is deleted.

The cap is 1 MB. Text is random, so PostgreSQL cannot compress it away."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import sql

from runtime.quota import measure_usage
from tests.runtime.conftest import Database, Runtime, run_runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

CAP = 1024 * 1024
DATAMODEL = "type User { id: ID! @id  name: String!  text: String }"
UPDATE_MANY = (
    "mutation($text: String, $where: UserWhereInput) "
    "{ updateManyUsers(data: {text: $text}, where: $where) { count } }"
)
CREATE = 'mutation($name: String!) { createUser(data: {name: $name, text: "hi"}) { id } }'
COUNT = "{ usersConnection { aggregate { count } } }"


@pytest.fixture(scope="module")
def sandbox(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    config = {
        "databases": {"default": database.prisma_config()},
        "redisUrl": os.environ["REDIS_URL"],
        "sandbox": {"rate": 1000, "perSeconds": 1, "maxWaiting": 100, "storageMb": 1},
    }
    with run_runtime(config, tmp_path_factory.mktemp("storage")) as runtime:
        yield runtime


def service_with_users(runtime: Runtime, name: str, count: int = 400) -> str:
    add(runtime, "", name)
    deploy(runtime, "", name, DATAMODEL)
    base = f"/{name}/dev"
    users = [{"_typeName": "User", "id": f"u{i}", "name": f"user {i}"} for i in range(count)]
    assert runtime.post(f"{base}/import", {"valueType": "nodes", "values": users}).body == []
    return base


def data(runtime: Runtime, base: str, query: str, **variables: Any) -> dict[str, Any]:
    return runtime.post(base, {"query": query, "variables": variables}).body


def live_bytes(database: Database, name: str) -> int:
    with database.connect() as conn:
        return measure_usage(conn, f"{name}$dev", 1).used_bytes  # a cap of 1: the live rows


@pytest.mark.parametrize("path", ["thread", "loop"])
def test_an_update_many_that_would_pass_the_cap_is_rolled_back(
    sandbox: Runtime, database: Database, service_name: str, path: str
) -> None:
    base = service_with_users(sandbox, service_name)
    # 50 kB (a body the event loop takes: up to 64 kB), into 400 rows: 20 MB.
    text = secrets.token_hex(25 * 1024)
    if path == "loop":
        # The document parsed and the service measured: the next one runs on the event loop.
        nobody = data(sandbox, base, UPDATE_MANY, text="x", where={"name": "nobody"})
        assert nobody == {"data": {"updateManyUsers": {"count": 0}}}
        query = UPDATE_MANY
    else:
        query = UPDATE_MANY + f" # {secrets.token_hex(4)}"  # a document never seen: a thread

    answer = data(sandbox, base, query, text=text, where={})

    (error,) = answer["errors"]
    assert error["code"] == 1003
    assert error["message"].startswith(f"This write would take the service '{service_name}$dev'")
    assert "over its storage limit of 1 MB, so it was rolled back" in error["message"]
    assert live_bytes(database, service_name) < CAP / 2
    untouched = data(
        sandbox, base, "{ usersConnection(where: {text_not: null}) { edges { node { id } } } }"
    )
    assert untouched == {"data": {"usersConnection": {"edges": []}}}
    # Nothing was written, so the service is still far under its cap: writes go on.
    assert "id" in data(sandbox, base, CREATE, name="after")["data"]["createUser"]
    small = data(sandbox, base, UPDATE_MANY, text="short", where={"name_starts_with": "user 1"})
    assert small["data"]["updateManyUsers"]["count"] > 0


def test_an_import_that_would_pass_the_cap_is_rolled_back(
    sandbox: Runtime, service_name: str
) -> None:
    base = service_with_users(sandbox, service_name, count=10)
    values = [
        {"_typeName": "User", "id": f"big{i}", "name": "big", "text": secrets.token_hex(1024)}
        for i in range(600)  # 1.2 MB
    ]

    answer = sandbox.post(f"{base}/import", {"valueType": "nodes", "values": values})

    assert answer.body["errors"][0]["code"] == 1003
    assert "rolled back" in answer.body["errors"][0]["message"]
    assert data(sandbox, base, COUNT)["data"]["usersConnection"]["aggregate"]["count"] == 10


def test_over_its_cap_a_service_refuses_writes_serves_reads_and_recovers_after_deletes(
    sandbox: Runtime, database: Database, service_name: str
) -> None:
    base = service_with_users(sandbox, service_name, count=10)
    assert "id" in data(sandbox, base, CREATE, name="first")["data"]["createUser"]
    # Another runtime process (or a cap lowered by the operator) put it over: 1.5 MB of rows.
    with database.connect() as conn:
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, name, text) SELECT 'big' || g, 'big', %s "
                "FROM generate_series(1, 750) g"
            ).format(sql.Identifier(f"{service_name}$dev", "User")),
            [secrets.token_hex(1024)],
        )
    time.sleep(2.1)  # this process trusts its last measure for 2 s

    refusals = [
        data(sandbox, base, CREATE, name="second"),
        data(sandbox, base, UPDATE_MANY, text="x", where={"name": "user 1"}),
        sandbox.post(
            f"{base}/import",
            {"valueType": "nodes", "values": [{"_typeName": "User", "id": "n1", "name": "n"}]},
        ).body,
        data(sandbox, base, CREATE, name="third"),
    ]
    for refused in refusals:
        (error,) = refused["errors"]
        assert error["code"] == 1003
        assert "has reached its storage limit of 1 MB" in error["message"]
        assert "Queries and deletes still work." in error["message"]
    assert data(sandbox, base, COUNT)["data"]["usersConnection"]["aggregate"]["count"] == 761

    deleted = data(sandbox, base, 'mutation { deleteManyUsers(where: {name: "big"}) { count } }')
    assert deleted == {"data": {"deleteManyUsers": {"count": 750}}}
    assert "id" in data(sandbox, base, CREATE, name="back")["data"]["createUser"]
