"""A mutation whose selection holds only the node's id (and `__typename`) answers without reading
the node back; any other selection, or an id whose JSON is not plain, is read back as before."""

from __future__ import annotations

import json

import pytest

from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service, deploy

DATAMODEL = """
type Thing {
  key: ID! @id
  name: String!
  tag: String @unique
}
"""


def statements(service: Service, query: str) -> tuple[int, dict]:
    before = service.statements()
    answer = service.request({"query": query})
    return service.statements() - before, json.loads(answer.body)


def test_an_id_only_selection_saves_the_read_back(service: Service) -> None:
    known, answer = statements(
        service, 'mutation { createThing(data: {name: "a"}) { key other: key __typename } }'
    )
    node = answer["data"]["createThing"]
    assert node["key"] == node["other"] and node["__typename"] == "Thing"
    read, answer = statements(service, 'mutation { createThing(data: {name: "b"}) { key name } }')
    assert answer["data"]["createThing"]["name"] == "b"
    assert read == known + 1  # the read-back statement
    # The node really is there, and an update or a delete by unique answers its id the same way.
    rows = dict(service.table_rows("Thing", "key", "name"))
    assert rows[node["key"]] == "a"
    service.data(
        f'mutation {{ updateThing(where: {{key: "{node["key"]}"}}, data: {{tag: "t"}}) {{ key }} }}'
    )
    updated = service.data('mutation { updateThing(where: {tag: "t"}, data: {name: "c"}) { key } }')
    assert updated == {"updateThing": {"key": node["key"]}}
    deleted = service.data('mutation { deleteThing(where: {tag: "t"}) { ... on Thing { key } } }')
    assert deleted == {"deleteThing": {"key": node["key"]}}
    assert node["key"] not in dict(service.table_rows("Thing", "key", "name"))
    skipped = service.data('mutation { createThing(data: {name: "d"}) { key @skip(if: true) } }')
    assert skipped == {"createThing": {}}


def test_a_missing_node_is_still_an_error(service: Service) -> None:
    error = service.error(
        'mutation { updateThing(where: {key: "nope"}, data: {name: "x"}) { key } }'
    )
    assert error["code"] == 3039


@pytest.fixture(scope="module")
def odd_ids(database: Database):  # type: ignore[no-untyped-def]
    deployed = deploy(database, "type Odd { id: ID! @id  name: String }")
    yield deployed
    deployed.conn.close()


def test_an_id_whose_json_is_not_plain_is_read_back(odd_ids: Service) -> None:
    """A client's own id (quotes, a backslash, non-ASCII) answers as PostgreSQL writes it."""
    odd = 'q"uo\\te é'
    for id_ in (odd, "plain-id"):
        odd_ids.insert("Odd", id=id_, name="n")
    odd_ids.conn.commit()
    read, answer = statements(
        odd_ids, f"mutation {{ deleteOdd(where: {{id: {json.dumps(odd)}}}) {{ id }} }}"
    )
    assert answer == {"data": {"deleteOdd": {"id": odd}}}
    known, answer = statements(odd_ids, 'mutation { deleteOdd(where: {id: "plain-id"}) { id } }')
    assert answer == {"data": {"deleteOdd": {"id": "plain-id"}}}
    assert read == known + 1  # the read-back
    assert odd_ids.table_rows("Odd", "id") == []
