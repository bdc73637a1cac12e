"""`/import`, `/export` and `/private` of a deployed service, on a real runtime process."""

from __future__ import annotations

import jwt
import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

SECRET = "bulk-service-secret-0123456789-0123456789"
DATAMODEL = """
type Author { id: ID! @id  name: String!  books: [Book] }
type Book { id: ID! @id  title: String!  author: Author @relation(link: INLINE) }
"""


def service_token() -> str:
    return jwt.encode({"data": {"service": "x@dev", "roles": ["admin"]}}, SECRET, "HS256")


def test_import_export_and_reset_over_http(runtime: Runtime, token: str, service_name: str):
    add(runtime, token, service_name, secrets=[SECRET])
    deploy(runtime, token, service_name, DATAMODEL, secrets=[SECRET])
    base = f"/{service_name}/dev"
    nodes = [
        {"_typeName": "Author", "id": "a1", "name": "Le Guin"},
        {"_typeName": "Book", "id": "b1", "title": "The Dispossessed"},
    ]
    relation = [
        [
            {"_typeName": "Book", "id": "b1", "fieldName": "author"},
            {"_typeName": "Author", "id": "a1", "fieldName": "books"},
        ]
    ]

    refused = runtime.post(f"{base}/import", {"valueType": "nodes", "values": nodes})
    assert refused.body["errors"][0]["code"] == 3015
    imported = runtime.post(
        f"{base}/import", {"valueType": "nodes", "values": nodes}, service_token()
    )
    assert imported.body == []
    linked = runtime.post(
        f"{base}/import", {"valueType": "relations", "values": relation}, service_token()
    )
    assert linked.body == []

    exported = runtime.post(
        f"{base}/export", {"fileType": "nodes", "cursor": {"table": 0, "row": 0}}, service_token()
    )
    assert exported.status == 200
    assert sorted(e["id"] for e in exported.body["out"]["jsonElements"]) == ["a1", "b1"]
    assert exported.body["cursor"] == {"table": -1, "row": -1, "field": -1, "array": -1}
    relations = runtime.post(f"{base}/export", {"fileType": "relations"}, service_token())
    assert relations.body["out"]["jsonElements"] == relation

    reset = runtime.post(f"{base}/private", {"query": "mutation { resetData }"}, service_token())
    assert reset.body == {"data": {"resetData": True}}
    after = runtime.post(f"{base}/export", {"fileType": "nodes"}, service_token())
    assert after.body["out"]["jsonElements"] == []


def test_bad_bulk_requests_get_clear_errors(runtime: Runtime, token: str, service_name: str):
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, DATAMODEL)
    base = f"/{service_name}/dev"

    wrong_type = runtime.post(f"{base}/export", {"fileType": "everything"})
    not_a_list = runtime.post(f"{base}/import", {"valueType": "nodes", "values": "x"})
    bad_value = runtime.post(
        f"{base}/import", {"valueType": "nodes", "values": [{"_typeName": "Nobody"}]}
    )
    subscription = runtime.post(
        f"{base}/private",
        {"query": "query($q: String!) { validateSubscriptionQuery(query: $q) { errors } }",
         "variables": {"q": "{ books { id } }"}},
    )  # fmt: skip

    assert wrong_type.status == 400
    assert "fileType must be one of" in wrong_type.body["errors"][0]["message"]
    assert not_a_list.status == 400
    assert bad_value.body == ["Failure inserting nodes value 0: unknown _typeName 'Nobody'"]
    assert subscription.body["data"]["validateSubscriptionQuery"]["errors"] == [
        "The query must be a subscription."
    ]
