"""The generated data API of a deployed service, through a real runtime process."""

from __future__ import annotations

import jwt
import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

SECRET = "data-api-secret-0123456789-0123456789-ab"
DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String
  posts: [Post!]!
}
type Post {
  id: ID! @id
  title: String!
  author: User! @relation(link: INLINE)
}
"""


def test_create_read_update_delete_over_http(runtime: Runtime, token: str, service_name: str):
    add(runtime, token, service_name, secrets=[SECRET])
    deploy(runtime, token, service_name, DATAMODEL, secrets=[SECRET])
    service_token = jwt.encode({"data": {"service": f"{service_name}@dev"}}, SECRET, "HS256")
    url = f"/{service_name}/dev"

    def gql(query: str, variables: dict | None = None) -> dict:
        response = runtime.post(url, {"query": query, "variables": variables}, service_token)
        assert response.status == 200
        return response.body

    created = gql(
        """mutation($email: String!) {
          createUser(data: {email: $email, name: "Ada", posts: {create: [{title: "Notes"}]}}) {
            id email posts { title }
          }
        }""",
        {"email": "ada@example.com"},
    )["data"]["createUser"]
    assert created["posts"] == [{"title": "Notes"}]
    assert len(created["id"]) == 25  # a cuid

    found = gql('{ users(where: {posts_some: {title: "Notes"}}) { email } }')
    assert found == {"data": {"users": [{"email": "ada@example.com"}]}}
    renamed = gql(
        'mutation { updateUser(where: {email: "ada@example.com"}, data: {name: "Lovelace"}) '
        "{ name } }"
    )
    assert renamed == {"data": {"updateUser": {"name": "Lovelace"}}}
    duplicate = gql('mutation { createUser(data: {email: "ada@example.com"}) { id } }')
    assert duplicate["errors"][0]["code"] == 3010
    batch = runtime.post(
        url, [{"query": "{ users { name } }"}, {"query": "{ posts { title } }"}], service_token
    )
    assert batch.body == [
        {"data": {"users": [{"name": "Lovelace"}]}},
        {"data": {"posts": [{"title": "Notes"}]}},
    ]
    deleted = gql('mutation { deleteManyPosts(where: {title: "Notes"}) { count } }')
    assert deleted == {"data": {"deleteManyPosts": {"count": 1}}}

    assert runtime.post(url, {"query": "{ users { id } }"}).body["errors"][0]["code"] == 3015


def test_bad_input_gets_clear_errors_and_the_process_keeps_serving(
    runtime: Runtime, token: str, service_name: str
):
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, DATAMODEL)
    url = f"/{service_name}/dev"

    unparseable = runtime.post(url, {"query": "{ users { id "})
    unknown = runtime.post(url, {"query": "{ users { shoeSize } }"})
    wrong_literal = runtime.post(url, {"query": '{ users(first: "ten") { id } }'})
    huge = runtime.post(
        url, None, raw=b'{"query": "' + b" " * (17 * 1024 * 1024) + b'{ users { id } }"}'
    )
    nested = "{ users { " + "posts { author { " * 100 + "id" + " } }" * 100 + " } }"
    too_deep = runtime.post(url, {"query": nested})
    not_json = runtime.post(url, None, raw=b"{nope")
    ten_megabytes = runtime.post(url, {"query": "{ users { " + "id " * 3_500_000 + "} }"})

    assert unparseable.status == 500  # Prisma's top-level handler answers unparseable text
    assert "Syntax Error" in unparseable.body["errors"][0]["message"]
    assert unknown.status == 200
    assert "Cannot query field 'shoeSize' on type 'User'" in unknown.body["errors"][0]["message"]
    assert wrong_literal.status == 200
    assert "Int cannot represent non-integer value" in wrong_literal.body["errors"][0]["message"]
    assert huge.status == 413
    assert too_deep.status == 200
    assert "levels" in too_deep.body["errors"][0]["message"]
    assert not_json.status == 400
    assert ten_megabytes.status == 500, ten_megabytes.body  # like unparseable text
    assert "tokens" in ten_megabytes.body["errors"][0]["message"]
    assert runtime.post(url, {"query": "{ users { id } }"}).body == {"data": {"users": []}}


def test_inlined_values_answer_and_fail_as_before_once_their_shape_is_known(
    runtime: Runtime, token: str, service_name: str
):
    """Texts that differ only in values are answered from one hoisted plan (on the event loop
    once it is cached); bad literals and bad variables still get their own errors."""
    add(runtime, token, service_name)
    deploy(runtime, token, service_name, DATAMODEL)
    url = f"/{service_name}/dev"

    def gql(query: str, variables: dict | None = None) -> dict:
        response = runtime.post(url, {"query": query, "variables": variables})
        assert response.status == 200
        return response.body

    for i in range(6):
        created = gql(
            f'mutation {{ createUser(data: {{email: "u{i}@x.io", name: "N{i}"}}) {{ name }} }}'
        )
        assert created == {"data": {"createUser": {"name": f"N{i}"}}}
    for _ in range(2):
        for i in range(6):
            found = gql(f'{{ user(where: {{email: "u{i}@x.io"}}) {{ name }} }}')
            assert found == {"data": {"user": {"name": f"N{i}"}}}
        bad = gql("{ user(where: {email: 5}) { name } }")
        assert bad["data"] is None
        assert bad["errors"][0]["message"].startswith(
            "Argument 'where' expected type 'UserWhereUniqueInput!' but got: {email: 5}. "
            "Reason: 'email' String value expected"
        )
        query = (
            'query($n: String) { user(where: {email: "u1@x.io"}) { name } '
            "users(where: {name: $n}) { email } }"
        )
        wrong = gql(query, {"n": 7})
        assert wrong["data"] is None
        assert "$n" in wrong["errors"][0]["message"]
        assert gql(query, {"n": "N2"})["data"] == {
            "user": {"name": "N1"},
            "users": [{"email": "u2@x.io"}],
        }
        missing = gql(
            'mutation { updateUser(where: {email: "nobody-at-all@x.io"}, data: {name: "x"}) '
            "{ name } }"
        )
        assert missing["errors"][0]["code"] == 3039
        assert missing["errors"][0]["locations"] == [{"line": 1, "column": 12}]
