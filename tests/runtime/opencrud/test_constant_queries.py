"""A query document without variables, once compiled, is answered from its compiled fields
without being looked up, coerced and keyed again (`executor._constant`). Every way of sending
such a text must answer exactly as a fresh API answers it the first time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from runtime.datamodel import parse_datamodel
from runtime.opencrud import executor
from runtime.opencrud.executor import execute, service_api
from runtime.opencrud.limits import RequestLimits
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


def test_the_constant_road_is_taken(service: Service, monkeypatch: pytest.MonkeyPatch):
    taken = []
    real = executor._constant

    def spy(*args: Any) -> Any:
        found = real(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(executor, "_constant", spy)
    first = execute(service.api, service.schema_name, {"query": QUERY}, service.conn, "local:t")
    again = execute(service.api, service.schema_name, {"query": QUERY}, service.conn, "local:t")
    assert first.body == again.body
    assert taken[-1] is True
