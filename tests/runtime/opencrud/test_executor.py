"""The executor's contract with the HTTP app: batches, statuses, validation errors, limits."""

from __future__ import annotations

import json

from tests.runtime.opencrud.conftest import Service

DATAMODEL = """
type Item {
  id: ID! @id
  name: String!
  at: DateTime
  data: Json
  parent: Item @relation(name: "Tree", link: INLINE)
  children: [Item!]! @relation(name: "Tree")
}
"""


def test_a_batch_is_answered_with_an_array(service: Service) -> None:
    answer = service.request(
        [
            {"query": 'mutation { createItem(data: {name: "b1"}) { name } }'},
            {
                "query": "query ($n: String) { items(where: {name: $n}) { name } }",
                "variables": {"n": "b1"},
            },
            {"query": "{ nope }"},
        ]
    )
    assert answer.status == 200
    body = answer.json()
    assert body[0] == {"data": {"createItem": {"name": "b1"}}}
    assert body[1] == {"data": {"items": [{"name": "b1"}]}}
    assert body[2]["data"] is None and "nope" in body[2]["errors"][0]["message"]


def test_validation_errors_come_with_locations_and_no_code(service: Service) -> None:
    result = service.query("{ items { id unknownField } }")
    assert result["data"] is None
    error = result["errors"][0]
    assert "unknownField" in error["message"]
    assert error["locations"] == [{"line": 1, "column": 14}]
    assert "code" not in error


def test_wrong_scalar_literals_are_validation_errors(service: Service) -> None:
    result = service.query('{ items(where: {at_gt: "yesterday"}) { id } }')
    assert result["data"] is None
    assert "Date value expected" in result["errors"][0]["message"]
    result = service.query('{ items(first: "ten") { id } }')
    assert result["data"] is None and "Int" in result["errors"][0]["message"]


def test_unparseable_text_is_http_500_with_the_request_id(service: Service) -> None:
    answer = service.request({"query": "{ items { id "})
    assert answer.status == 500
    error = answer.json()["errors"][0]
    assert error["requestId"] == "local:test" and "Syntax Error" in error["message"]


def test_variables_that_are_not_json(service: Service) -> None:
    answer = service.request({"query": "{ items { id } }", "variables": "{nope"})
    assert answer.json()["errors"][0]["code"] == 3024


def test_a_200_level_query_is_refused_clearly(service: Service) -> None:
    query = "{ items { " + "parent { " * 200 + "id" + " }" * 200 + " } }"
    result = service.query(query)
    assert result["data"] is None
    assert "levels" in result["errors"][0]["message"]
    # The process keeps serving.
    assert service.data("{ items(first: 1) { __typename } }")["items"] in (
        [],
        [{"__typename": "Item"}],
    )


def test_deep_but_reasonable_nesting_works(service: Service) -> None:
    root = service.data('mutation { createItem(data: {name: "root"}) { id } }')["createItem"]["id"]
    parent = root
    create = (
        "mutation ($p: ID) "
        '{ createItem(data: {name: "level", parent: {connect: {id: $p}}}) { id } }'
    )
    for _ in range(5):
        parent = service.data(create, {"p": parent})["createItem"]["id"]
    data = service.data(
        "query ($id: ID) { item(where: {id: $id}) "
        "{ parent { parent { parent { parent { parent { id name } } } } } } }",
        {"id": parent},
    )
    node = data["item"]
    for _ in range(5):
        node = node["parent"]
    assert node == {"id": root, "name": "root"}


def test_introspection(service: Service) -> None:
    data = service.data(
        '{ __schema { queryType { name } } __type(name: "Item") { name interfaces { name } } '
        "items { __typename } }"
    )
    assert data["__schema"] == {"queryType": {"name": "Query"}}
    assert data["__type"] == {"name": "Item", "interfaces": [{"name": "Node"}]}
    assert isinstance(data["items"], list)


def test_json_and_datetime_values_round_trip(service: Service) -> None:
    data = service.data(
        'mutation { createItem(data: {name: "j", at: "2016", data: "[1, {\\"a\\": null}]"}) '
        "{ at data } }"
    )
    assert data == {"createItem": {"at": "2016-01-01T00:00:00.000Z", "data": [1, {"a": None}]}}
    data = service.data(
        "mutation ($d: Json) { createItem(data: "
        '{name: "j2", at: "2019-03-04T05:06:07.089+01:00", data: $d}) { at data } }',
        {"d": {"x": [1, 2]}},
    )
    assert data == {"createItem": {"at": "2019-03-04T04:06:07.089Z", "data": {"x": [1, 2]}}}
    error = service.error(
        'mutation ($d: Json) { createItem(data: {name: "j3", data: $d}) { id } }', {"d": 5}
    )
    assert error["code"] == 3037


def test_subscriptions_are_refused_politely(service: Service) -> None:
    result = service.query("subscription { item { mutation } }")
    assert result["data"] is None and "websocket" in result["errors"][0]["message"]


def test_answers_are_compact_json(service: Service) -> None:
    answer = service.request({"query": "{ items(first: 0) { id } }"})
    assert json.loads(answer.body) == {"data": {"items": []}}
