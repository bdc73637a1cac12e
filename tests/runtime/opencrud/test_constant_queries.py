"""A query document, once compiled, is answered from its compiled fields without being looked
up, validated and keyed again when its variables are String, ID or Float values
(`executor._prepared`). Every way of sending such a text, with its variables right or wrong,
must answer exactly as a fresh API answers it the first time."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg import errors as pg_errors

from runtime.datamodel import parse_datamodel
from runtime.opencrud import executor
from runtime.opencrud.executor import execute, service_api
from runtime.opencrud.limits import RequestLimits
from runtime.opencrud.steps import OneStatement, drive_async
from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service, deploy

DATAMODEL = """
type Item {
  id: ID! @id
  name: String! @unique
  rank: Int
}
"""
QUERY = '{ items(orderBy: name_ASC) { name rank } item(where: {name: "b"}) { rank } }'
NAMED = "query Two { items(first: 1, orderBy: name_DESC) { name } }"
TWO_OPERATIONS = 'query A { items { name } } query B { item(where: {name: "a"}) { name } }'
BY_NAME = "query($name: String!) { item(where: {name: $name}) { name rank } }"
BY_ID = "query ById($id: ID!, $name: String) { item(where: {id: $id}) { name } x: items(where: {name: $name}) { rank } }"  # noqa: E501
FIRST = "query($n: Int) { items(first: $n, orderBy: name_ASC) { name } }"  # its SQL has $n's value
TWO_VARIABLE_OPERATIONS = (
    "query A($name: String!) { item(where: {name: $name}) { name } } "
    "query B($name: String!) { item(where: {name: $name}) { rank } }"
)

PAYLOADS: list[tuple[dict[str, Any], RequestLimits | None]] = [
    ({"query": QUERY}, None),
    ({"query": QUERY, "variables": {}}, None),
    ({"query": QUERY, "variables": None}, None),
    ({"query": QUERY, "variables": "{}"}, None),
    ({"query": QUERY, "variables": ""}, None),
    ({"query": QUERY, "variables": 0}, None),  # an error, whatever the path
    ({"query": QUERY, "variables": {"unused": 1}}, None),
    ({"query": QUERY, "operationName": "Missing"}, None),
    ({"query": QUERY, "operationName": ""}, None),
    ({"query": QUERY}, RequestLimits(root_fields=1)),  # two root fields: refused
    ({"query": QUERY}, RequestLimits(root_fields=2)),
    ({"query": NAMED}, None),
    ({"query": NAMED, "operationName": "Two"}, None),
    ({"query": TWO_OPERATIONS, "operationName": "B"}, None),
    ({"query": TWO_OPERATIONS}, None),
    ({"query": "{ __typename items(first: 1) { name } }"}, None),
]
# A query with variables, the variables it is first asked with, and the payloads that follow.
VARIABLE_PAYLOADS: list[tuple[str, dict[str, Any], dict[str, Any], RequestLimits | None]] = [
    (BY_NAME, {"name": "a"}, {"variables": {"name": "b"}}, None),
    (BY_NAME, {"name": "a"}, {"variables": {"name": "missing"}}, None),
    (BY_NAME, {"name": "a"}, {"variables": {"name": "b", "unused": [1]}}, None),
    (BY_NAME, {"name": "a"}, {"variables": {}}, None),  # missing: an error
    (BY_NAME, {"name": "a"}, {"variables": {"name": None}}, None),  # null: an error
    (BY_NAME, {"name": "a"}, {"variables": {"name": 3}}, None),  # not a String: an error
    (BY_NAME, {"name": "a"}, {"variables": {"name": {"a": 1}}}, None),
    (BY_NAME, {"name": "a"}, {"variables": '{"name": "c"}'}, None),
    (BY_NAME, {"name": "a"}, {"variables": None}, None),
    (BY_NAME, {"name": "a"}, {"variables": {"name": "b"}, "operationName": "Nope"}, None),
    (BY_NAME, {"name": "a"}, {"variables": {"name": "b"}}, RequestLimits(root_fields=0)),
    (BY_ID, {"id": "nobody"}, {"variables": {"id": 12, "name": "a"}}, None),  # an Int for an ID
    (BY_ID, {"id": "nobody"}, {"variables": {"id": "x"}, "operationName": "ById"}, None),
    (BY_ID, {"id": "nobody"}, {"variables": {"id": "x", "name": "c"}}, None),
    (BY_ID, {"id": "nobody"}, {"variables": {"id": 1.5}}, RequestLimits(root_fields=1)),
    (FIRST, {"n": 1}, {"variables": {"n": 2}}, None),
    (FIRST, {"n": 1}, {"variables": {"n": "2"}}, None),
    (TWO_VARIABLE_OPERATIONS, {"name": "b"}, {"variables": {"name": "b"}}, None),
]


@pytest.fixture
def service(database: Database) -> Iterator[Service]:
    service = deploy(database, DATAMODEL)
    for name, rank in (("a", 1), ("b", 2), ("c", None)):
        rank_text = "null" if rank is None else str(rank)
        answer = service.request(
            {
                "query": f'mutation {{ createItem(data: {{name: "{name}", rank: {rank_text}}}) '
                "{ id } }"
            }
        )
        assert b'"errors"' not in answer.body
    yield service
    service.conn.close()


@pytest.mark.parametrize(("payload", "limits"), PAYLOADS)
def test_a_known_constant_query_answers_as_a_fresh_one(
    service: Service, payload: dict[str, Any], limits: RequestLimits | None
):
    def fresh() -> bytes:
        parsed = parse_datamodel(DATAMODEL)
        assert parsed.schema is not None
        return run(service_api(parsed.schema.to_json()), payload, limits)  # nothing cached

    def run(api: Any, body: dict[str, Any], request_limits: RequestLimits | None) -> bytes:
        answer = execute(api, service.schema_name, body, service.conn, "local:t", request_limits)
        service.conn.commit()
        return answer.body

    expected = fresh()
    # The shared API learns the text from a plain request first, then answers this payload.
    run(service.api, {"query": payload["query"]}, None)
    assert run(service.api, payload, limits) == expected
    assert run(service.api, payload, limits) == expected


@pytest.mark.parametrize(("query", "first", "payload", "limits"), VARIABLE_PAYLOADS)
def test_a_known_query_with_variables_answers_as_a_fresh_one(
    service: Service,
    query: str,
    first: dict[str, Any],
    payload: dict[str, Any],
    limits: RequestLimits | None,
):
    def run(api: Any, body: dict[str, Any], request_limits: RequestLimits | None) -> bytes:
        answer = execute(api, service.schema_name, body, service.conn, "local:t", request_limits)
        service.conn.commit()
        return answer.body

    parsed = parse_datamodel(DATAMODEL)
    assert parsed.schema is not None
    body = {"query": query, **payload}
    expected = run(service_api(parsed.schema.to_json()), body, limits)  # nothing cached
    names = ["A", "B"] if query == TWO_VARIABLE_OPERATIONS else [None]
    for name in names:  # the shared API learns the text from a plain request first
        run(service.api, {"query": query, "variables": first, "operationName": name}, None)
    assert run(service.api, body, limits) == expected
    assert run(service.api, body, limits) == expected


def test_the_prepared_road_is_taken(service: Service, monkeypatch: pytest.MonkeyPatch):
    taken = []
    real = executor._prepared

    def spy(*args: Any) -> Any:
        found = real(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(executor, "_prepared", spy)
    first = execute(service.api, service.schema_name, {"query": QUERY}, service.conn, "local:t")
    again = execute(service.api, service.schema_name, {"query": QUERY}, service.conn, "local:t")
    assert first.body == again.body
    assert taken[-1] is True
    for name in ("a", "b", "b"):
        body = {"query": BY_NAME, "variables": {"name": name}}
        answer = execute(service.api, service.schema_name, body, service.conn, "local:t")
        assert answer.body == b'{"data":{"item":{"name" : "%s", "rank" : %d}}}' % (
            name.encode(),
            1 if name == "a" else 2,
        )
    assert taken[-3:] == [False, True, True]
    # An Int variable changes the SQL: such a query takes the full road every time.
    for _ in range(2):
        body = {"query": FIRST, "variables": {"n": 1}}
        execute(service.api, service.schema_name, body, service.conn, "local:t")
    assert taken[-2:] == [False, False]


def test_a_one_field_read_failing_on_the_loop_answers_as_its_generator(service: Service):
    """The loop runs a one-field read without its generator (`steps.OneStatement`); a statement
    that fails there is answered as the generator answers it, or raises as it raises."""
    body = {"query": BY_NAME, "variables": {"name": "a"}}
    execute(service.api, service.schema_name, body, service.conn, "local:t")  # learnt

    class Failing:
        broken = False

        def __init__(self, error: Exception) -> None:
            self.error = error

        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            raise self.error

    def on_loop(error: Exception) -> Any:
        steps = executor.plan(service.api, body, "local:t", cached_only=True)
        assert isinstance(steps, OneStatement)
        # A thread of its own: the browser tests keep an event loop running in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            running = drive_async(steps, Failing(error), service.schema_name)  # type: ignore[arg-type]
            return thread.submit(asyncio.run, running).result()

    def generator(error: Exception) -> Any:
        steps = executor._read_steps(*executor._prepared(service.api, body, None), "local:t")
        steps.send(None)
        try:
            steps.throw(error)
        except StopIteration as stop:
            return stop.value
        raise AssertionError("the read went on")

    bad = pg_errors.InvalidTextRepresentation("invalid input syntax")
    status, answer = on_loop(bad)
    assert (status, answer) == generator(bad)
    assert b'"errors"' in answer and b'"data":{"item":null}' in answer
    with pytest.raises(pg_errors.QueryCanceled):
        on_loop(pg_errors.QueryCanceled("canceling statement"))
