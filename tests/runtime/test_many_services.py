"""Many services, few APIs: services of one datamodel share its generated API and never each
other's rows; a process keeps `apiCacheSize` APIs and builds an evicted one again without a
wrong answer; a redeploy through one process reaches the others (within the state TTL, 1 s).
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runtime import store
from runtime.config import parse_config
from runtime.directory import ServiceDirectory
from runtime.opencrud.executor import execute
from runtime.tenants import Tenant
from tests.runtime.conftest import Database, Runtime, management_token, run_async, run_runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

CREATE = "mutation($name: String!, $n: Int) { createItem(data: {name: $name, n: $n}) { id } }"


def datamodel(k: int) -> str:
    """Datamodel `k`: the same `Item` everywhere, plus a field and an enum only `k` has."""
    return f"""
enum Shade{k} {{ LIGHT{k} DARK{k} }}
type Item {{
  id: ID! @id
  name: String! @unique
  n: Int
  only{k}: Shade{k}
  parts: [Part!]!
}}
type Part {{
  id: ID! @id
  label: String
  item: Item @relation(link: INLINE)
}}
"""


def service(runtime: Runtime, token: str, k: int) -> str:
    name = f"many{secrets.token_hex(4)}"
    add(runtime, token, name)
    deploy(runtime, token, name, datamodel(k))
    return name


def send(runtime: Runtime, name: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    response = runtime.post(f"/{name}/dev", {"query": query, "variables": variables or {}})
    assert response.status == 200, response.body
    return response.body


def seed(runtime: Runtime, name: str, rows: int = 3) -> None:
    for i in range(rows):
        answer = send(runtime, name, CREATE, {"name": f"{name}-{i}", "n": i})
        assert "errors" not in answer, answer


def items(runtime: Runtime, name: str, k: int) -> list[dict[str, Any]]:
    answer = send(runtime, name, f"{{ items(orderBy: name_ASC) {{ name n only{k} }} }}")
    assert "errors" not in answer, (name, answer)
    return answer["data"]["items"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def small_cache(
    database: Database, runtime: Runtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A second runtime on the same database keeping one API at a time."""
    config = {k: v for k, v in runtime.config.items() if k != "port"}
    with run_runtime({**config, "apiCacheSize": 1}, tmp_path_factory.mktemp("small")) as running:
        yield running


def test_eviction_under_a_small_cache_keeps_answers_correct(
    runtime: Runtime, small_cache: Runtime
) -> None:
    token = management_token()
    names = {(k, i): service(runtime, token, k) for k in range(3) for i in range(2)}
    for name in names.values():
        seed(runtime, name)
    order = list(names.items()) * 3
    random.Random(16).shuffle(order)
    for (k, _), name in order:
        # Most turns need another datamodel's API than the last: built again each time.
        assert items(small_cache, name, k) == [
            {"name": f"{name}-{i}", "n": i, "only" + str(k): None} for i in range(3)
        ]
        other = (k + 1) % 3
        wrong = send(small_cache, name, f"{{ items {{ only{other} }} }}")
        assert f"Cannot query field 'only{other}' on type 'Item'" in str(wrong["errors"]), wrong
        # Writes too, with the shared compiled statement of this datamodel.
        answer = send(
            small_cache,
            name,
            f"mutation($w: String!) {{ updateItem(where: {{name: $w}}, "
            f"data: {{only{k}: DARK{k}}}) {{ name only{k} }} }}",
            {"w": f"{name}-0"},
        )
        assert answer == {"data": {"updateItem": {"name": f"{name}-0", f"only{k}": f"DARK{k}"}}}
        send(
            small_cache,
            name,
            f'mutation {{ updateItem(where: {{name: "{name}-0"}}, data: {{only{k}: null}}) '
            "{ id } }",
        )


def test_services_of_one_datamodel_share_the_api_but_never_rows(
    database: Database, runtime: Runtime, tmp_path: Path
) -> None:
    token = management_token()
    first, second, third = (service(runtime, token, k) for k in (7, 7, 8))
    for name in (first, second, third):
        seed(runtime, name)
    config = parse_config({"databases": {"default": database.prisma_config()}}, {})
    tenant = Tenant.open(config.servers[0], create_database=False)
    directory = ServiceDirectory(datamodels=4)
    try:
        with tenant.pool.connection() as conn:
            a, b, c = (directory.load(conn, tenant, f"{n}$dev") for n in (first, second, third))
            assert a.api is not None and b.api is not None and c.api is not None
            assert a.api is b.api  # one generated API for the two services of datamodel 7
            assert c.api is not a.api
            assert a.schema_sql != b.schema_sql
            query = {"query": "query($n: Int) { items(where: {n_gte: $n}) { name } }"}
            for entry, name in ((a, first), (b, second), (a, first), (c, third)):
                assert entry.api is not None
                answer = execute(
                    entry.api, entry.schema, {**query, "variables": {"n": 1}}, conn, "t"
                )
                assert answer.json() == {
                    "data": {"items": [{"name": f"{name}-1"}, {"name": f"{name}-2"}]}
                }
            # The second service ran the statement the first compiled: one entry, shared.
            assert len(a.api.compiled) == 1
        # One API kept: loading the third service evicts the first's, which is built again.
        small = ServiceDirectory(datamodels=1, state_ttl=0)
        with tenant.pool.connection() as conn:
            before = small.load(conn, tenant, f"{first}$dev").api
            assert small.load(conn, tenant, f"{third}$dev").api is not before
            again = small.load(conn, tenant, f"{second}$dev")
            assert again.api is not None and again.api is not before
            assert before is not None and again.api.version == before.version
            answer = execute(again.api, again.schema, {"query": "{ items { name } }"}, conn, "t")
            assert answer.json() == {
                "data": {"items": [{"name": f"{second}-{i}"} for i in range(3)]}
            }
    finally:
        tenant.close()


def test_a_redeploy_reaches_every_process(runtime: Runtime, small_cache: Runtime) -> None:
    token = management_token()
    name = service(runtime, token, 1)
    seed(runtime, name, rows=1)
    assert items(small_cache, name, 1) == [{"name": f"{name}-0", "n": 0, "only1": None}]
    # `only1` goes (a data loss warning: the model has rows), `only2` comes.
    redeployed = deploy(runtime, token, name, datamodel(2), force=True)
    assert redeployed["errors"] == [] and redeployed["migration"]["status"] == "SUCCESS"
    # The process that ran the deploy answers with the new API at once...
    assert items(runtime, name, 2) == [{"name": f"{name}-0", "n": 0, "only2": None}]
    # ...the other within its state TTL: until then it answers as the old API, never wrongly.
    deadline = time.monotonic() + 15
    while True:
        answer = send(small_cache, name, "{ items { name only2 } }")
        if "errors" not in answer:
            break
        assert "Cannot query field 'only2'" in str(answer["errors"]), answer
        assert time.monotonic() < deadline, "the other process kept the old API"
        time.sleep(0.05)
    assert answer == {"data": {"items": [{"name": f"{name}-0", "only2": None}]}}
    gone = send(small_cache, name, "{ items { only1 } }")
    assert "Cannot query field 'only1' on type 'Item'" in str(gone["errors"]), gone


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_query_renews_every_busy_service_of_a_server(
    database: Database, runtime: Runtime
) -> None:
    """An expired entry is read again on the event loop together with the server's other
    expired entries that requests used since they were read; an unused one, or one with a new
    revision, is left expired for its next request to load."""
    token = management_token()
    busy, other, idle = (service(runtime, token, k) for k in (3, 3, 4))
    config = parse_config({"databases": {"default": database.prisma_config()}}, {})
    tenant = Tenant.open(config.servers[0], create_database=False)
    clock = Clock()
    directory = ServiceDirectory(state_ttl=1.0, clock=clock)
    pids = {name: f"{name}$dev" for name in (busy, other, idle)}

    try:
        with tenant.pool.connection() as conn:
            first = {name: directory.load(conn, tenant, pid) for name, pid in pids.items()}
        clock.now += 0.5
        assert directory.cached(tenant, pids[busy]) is not None
        assert directory.cached(tenant, pids[other]) is not None  # used; `idle` is not
        clock.now += 1.0
        assert all(directory.cached(tenant, pid) is None for pid in pids.values())
        entry, executed = revalidate(database, directory, tenant, pids[busy])
        assert executed == 1
        assert entry is not None and entry.api is first[busy].api
        renewed = directory.cached(tenant, pids[other])  # renewed by the same query
        assert renewed is not None and renewed.api is first[other].api
        assert directory.cached(tenant, pids[idle]) is None
        # A redeploy of `other`: the next renewal leaves it for a load of the new revision.
        deploy(runtime, token, other, datamodel(5))
        clock.now += 1.5
        entry, executed = revalidate(database, directory, tenant, pids[busy])
        assert entry is not None and executed == 1
        assert directory.cached(tenant, pids[other]) is None
        with tenant.pool.connection() as conn:
            reloaded = directory.load(conn, tenant, pids[other])
        assert reloaded.api is not None and reloaded.api is not first[other].api
        assert "only5" in reloaded.api.graphql_schema.type_map["Item"].fields  # type: ignore[attr-defined]
    finally:
        tenant.close()


def test_a_renewal_takes_new_secrets_and_keeps_the_rest_in_place(
    database: Database, runtime: Runtime
) -> None:
    """Secrets changed through another process (same revision): the renewal answers them, in
    a new entry; an unchanged service keeps its entry, renewed in place."""
    token = management_token()
    changed, same = (service(runtime, token, 6) for _ in range(2))
    config = parse_config({"databases": {"default": database.prisma_config()}}, {})
    tenant = Tenant.open(config.servers[0], create_database=False)
    clock = Clock()
    directory = ServiceDirectory(state_ttl=1.0, clock=clock)
    pids = {name: f"{name}$dev" for name in (changed, same)}
    try:
        with tenant.pool.connection() as conn:
            first = {name: directory.load(conn, tenant, pid) for name, pid in pids.items()}
            assert first[changed].state is not None and first[changed].state.secrets == []
            store.update_secrets(conn, tenant.management_schema, pids[changed], ["s3cr3t-new"])
        clock.now += 0.6
        assert directory.cached(tenant, pids[same]) is not None  # used since read
        clock.now += 0.6
        entry, executed = revalidate(database, directory, tenant, pids[changed])
        assert executed == 1
        assert entry is not None and entry is not first[changed]
        assert entry.state is not None and entry.state.secrets == ["s3cr3t-new"]
        assert entry.api is first[changed].api and entry.loaded_at == clock.now
        assert directory.cached(tenant, pids[changed]) is entry
        assert directory.cached(tenant, pids[same]) is first[same]  # renewed in place
        assert first[same].loaded_at == clock.now
    finally:
        tenant.close()


def test_busy_services_read_at_different_times_are_renewed_together(
    database: Database, runtime: Runtime
) -> None:
    """A renewal also takes the used entries past half their time to live, so busy services
    read at scattered times fall into step: one query a second for all of them, not one for
    each as it expires."""
    token = management_token()
    names = [service(runtime, token, 3) for _ in range(3)]
    config = parse_config({"databases": {"default": database.prisma_config()}}, {})
    tenant = Tenant.open(config.servers[0], create_database=False)
    clock = Clock()
    directory = ServiceDirectory(state_ttl=1.0, clock=clock)
    pids = [f"{name}$dev" for name in names]

    try:
        with tenant.pool.connection() as conn:
            for k, pid in enumerate(pids):  # read 0.3 s apart
                clock.now = 0.3 * k
                directory.load(conn, tenant, pid)
        clock.now = 0.9
        assert all(directory.cached(tenant, pid) is not None for pid in pids)  # all used
        clock.now = 1.05  # the first expired; the second is 0.75 s old, the third 0.45 s
        assert directory.cached(tenant, pids[0]) is None
        entry, executed = revalidate(database, directory, tenant, pids[0])
        assert entry is not None and executed == 1
        assert loaded_at(directory, tenant, pids) == [1.05, 1.05, 0.6]
        for pid in pids:
            assert directory.cached(tenant, pid) is not None
        clock.now = 1.65  # the third expires alone, and takes the other two along
        assert directory.cached(tenant, pids[2]) is None
        entry, executed = revalidate(database, directory, tenant, pids[2])
        assert entry is not None and executed == 1
        assert loaded_at(directory, tenant, pids) == [1.65] * 3  # in step from now on
    finally:
        tenant.close()


def revalidate(
    database: Database, directory: ServiceDirectory, tenant: Tenant, pid: str
) -> tuple[Any, int]:
    """`directory.revalidate` on a connection of its own: the entry and the queries it ran."""

    async def body() -> tuple[Any, int]:
        async with await psycopg.AsyncConnection.connect(database.conninfo()) as conn:
            cursor = CountingCursor(conn)
            entry = await directory.revalidate(cursor, tenant, pid)
            return entry, cursor.executed

    return run_async(body())


def loaded_at(directory: ServiceDirectory, tenant: Tenant, pids: list[str]) -> list[float]:
    entries = [directory._services.peek((tenant.config.name, pid)) for pid in pids]
    return [e.loaded_at if e is not None else -1 for e in entries]


class CountingCursor:
    """An async cursor that counts the statements it runs."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.cursor = conn.cursor()
        self.executed = 0

    async def execute(self, query: Any, params: Any = None) -> None:
        self.executed += 1
        await self.cursor.execute(query, params)

    async def fetchall(self) -> list[Any]:
        return await self.cursor.fetchall()
