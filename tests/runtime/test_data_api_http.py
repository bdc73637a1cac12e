"""The generated data API of a deployed service, through a real runtime process."""

from __future__ import annotations

import jwt

from tests.runtime.conftest import Runtime
from tests.runtime.test_management_api import add, deploy

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
