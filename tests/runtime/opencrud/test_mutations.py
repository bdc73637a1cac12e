"""Mutations: GraphQL in, JSON out, against a deployed service on real PostgreSQL."""

from __future__ import annotations

import re

from tests.runtime.opencrud.conftest import Service

DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String
  role: Role! @default(value: USER)
  active: Boolean! @default(value: true)
  tags: [String] @scalarList(strategy: RELATION)
  profile: Json
  posts: [Post!]! @relation(name: "UserPosts", onDelete: CASCADE)
  account: Account @relation(link: INLINE)
  createdAt: DateTime! @createdAt
  updatedAt: DateTime! @updatedAt
}

type Post {
  id: ID! @id
  title: String!
  score: Float @default(value: 1.5)
  author: User! @relation(name: "UserPosts", link: INLINE)
  labels: [Label!]!
}

type Label {
  id: ID! @id
  name: String! @unique
  posts: [Post!]!
}

type Account {
  id: ID! @id
  iban: String!
  owner: User!
}

enum Role {
  USER
  ADMIN
}
"""

CUID = re.compile(r"^c[0-9a-z]{24}$")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def create_user(service: Service, email: str, extra: str = "") -> dict:
    return service.data(
        f'mutation {{ createUser(data: {{email: "{email}" {extra}}}) '
        "{ id email name role active tags profile createdAt updatedAt posts { id title score } } }"
    )["createUser"]


def test_create_fills_ids_defaults_and_timestamps(service: Service) -> None:
    user = create_user(
        service, "a@example.com", 'name: "A", tags: {set: ["x", "y"]}, profile: "{\\"k\\": [1]}"'
    )
    assert CUID.match(user["id"])
    assert user["role"] == "USER" and user["active"] is True
    assert user["tags"] == ["x", "y"] and user["profile"] == {"k": [1]}
    assert STAMP.match(user["createdAt"]) and user["createdAt"] == user["updatedAt"]
    assert user["posts"] == []


def test_create_with_nested_create_and_connect(service: Service) -> None:
    service.data('mutation { createLabel(data: {name: "news"}) { id } }')
    data = service.data(
        """mutation { createUser(data: {
            email: "nested@example.com",
            posts: {create: [
              {title: "One", labels: {connect: [{name: "news"}], create: [{name: "fresh"}]}},
              {title: "Two", score: 3}
            ]}
        }) {
          email
          posts(orderBy: title_ASC) {
            title score author { email } labels(orderBy: name_ASC) { name }
          }
        } }"""
    )
    assert data["createUser"] == {
        "email": "nested@example.com",
        "posts": [
            {"title": "One", "score": 1.5, "author": {"email": "nested@example.com"},
             "labels": [{"name": "fresh"}, {"name": "news"}]},
            {"title": "Two", "score": 3.0, "author": {"email": "nested@example.com"}, "labels": []},
        ],
    }  # fmt: skip


def test_create_with_a_variable_json_and_datetime_strings(service: Service) -> None:
    data = service.data(
        "mutation ($data: UserCreateInput!) { createUser(data: $data) { email profile } }",
        {"data": {"email": "var@example.com", "profile": {"nested": {"a": True}}}},
    )
    assert data["createUser"] == {"email": "var@example.com", "profile": {"nested": {"a": True}}}


def test_invalid_json_is_refused(service: Service) -> None:
    error = service.error(
        'mutation { createUser(data: {email: "j@example.com", profile: "{nope"}) { id } }'
    )
    assert error["code"] == 3037
    assert "is not a valid Json" in error["message"]


def test_unique_violation(service: Service) -> None:
    create_user(service, "dup@example.com")
    result = service.query('mutation { createUser(data: {email: "dup@example.com"}) { id } }')
    assert result["data"] is None
    assert result["errors"][0]["code"] == 3010
    assert result["errors"][0]["message"] == (
        "A unique constraint would be violated on User. Details: Field name = email"
    )
    assert result["errors"][0]["path"] == ["createUser"]


def test_id_too_long(service: Service) -> None:
    error = service.error(
        "mutation { createUser(data: "
        '{id: "morethantwentyfivecharacterslong", email: "long@x.io"}) { id } }'
    )
    assert error["code"] == 3007
    assert error["message"] == "Value for field id is too long."


def test_update_scalars_lists_and_updated_at(service: Service) -> None:
    user = create_user(service, "up@example.com", 'tags: {set: ["a"]}')
    data = service.data(
        f'mutation {{ updateUser(where: {{id: "{user["id"]}"}}, data: {{name: "New", role: ADMIN, '
        'tags: {set: ["b", "c"]}}) { name role tags createdAt updatedAt } }'
    )["updateUser"]
    assert data["name"] == "New" and data["role"] == "ADMIN" and data["tags"] == ["b", "c"]
    assert data["createdAt"] == user["createdAt"] and data["updatedAt"] >= user["updatedAt"]


def test_update_of_a_missing_node(service: Service) -> None:
    result = service.query(
        'mutation { updateUser(where: {email: "ghost@x.io"}, data: {name: "x"}) { id } }'
    )
    assert result["data"] == {"updateUser": None}
    assert result["errors"][0]["code"] == 3039
    assert result["errors"][0]["message"] == (
        "No Node for the model User with value ghost@x.io for email found."
    )


def test_where_unique_problems_in_mutations(service: Service) -> None:
    assert service.error("mutation { deleteUser(where: {}) { id } }")["code"] == 3040
    error = service.error('mutation { deleteUser(where: {id: "a", email: "b"}) { id } }')
    assert error["code"] == 3045


def test_upsert_creates_then_updates(service: Service) -> None:
    query = (
        'mutation { upsertUser(where: {email: "ups@x.io"}, create: {email: "ups@x.io", name: "C"}, '
        'update: {name: "U"}) { name } }'
    )
    assert service.data(query) == {"upsertUser": {"name": "C"}}
    assert service.data(query) == {"upsertUser": {"name": "U"}}


def test_delete_returns_the_node_and_cascades(service: Service) -> None:
    service.data(
        'mutation { createUser(data: {email: "del@x.io", '
        'posts: {create: [{title: "P1"}, {title: "P2"}]}}) { id } }'
    )
    data = service.data(
        'mutation { deleteUser(where: {email: "del@x.io"}) { email posts { title } } }'
    )
    assert data == {
        "deleteUser": {"email": "del@x.io", "posts": [{"title": "P1"}, {"title": "P2"}]}
    }
    assert service.data('{ posts(where: {title_in: ["P1", "P2"]}) { id } }') == {"posts": []}


def test_update_many_and_delete_many(service: Service) -> None:
    for i in range(3):
        create_user(service, f"many{i}@x.io")
    data = service.data(
        "mutation { updateManyUsers("
        'where: {email_starts_with: "many"}, data: {name: "M"}) { count } }'
    )
    assert data == {"updateManyUsers": {"count": 3}}
    assert {
        u["name"]
        for u in service.data('{ users(where: {email_starts_with: "many"}) { name } }')["users"]
    } == {"M"}
    data = service.data(
        'mutation { deleteManyUsers(where: {email_starts_with: "many"}) { count } }'
    )
    assert data == {"deleteManyUsers": {"count": 3}}


def test_nested_to_many_operations(service: Service) -> None:
    user = service.data(
        """mutation { createUser(data: {email: "ops@x.io", posts: {create: [
             {title: "a"}, {title: "b"}, {title: "c"}, {title: "d"}, {title: "e"}]}}) {
             id posts { id title } } }"""
    )["createUser"]
    posts = {p["title"]: p["id"] for p in user["posts"]}
    other = create_user(service, "other@x.io")
    data = service.data(
        f"""mutation {{ updateUser(where: {{id: "{user["id"]}"}}, data: {{posts: {{
              update: [{{where: {{id: "{posts["a"]}"}}, data: {{title: "a2"}}}}]
              upsert: [
                {{where: {{id: "{posts["b"]}"}}, update: {{title: "b2"}}, create: {{title: "no"}}}},
                {{where: {{id: "missing"}}, update: {{title: "no"}}, create: {{title: "f"}}}}
              ]
              delete: [{{id: "{posts["c"]}"}}]
              deleteMany: [{{title: "d"}}]
              updateMany: [{{where: {{title: "e"}}, data: {{score: 9}}}}]
              create: [{{title: "g"}}]
           }}}}) {{ posts(orderBy: title_ASC) {{ title score }} }} }}"""
    )
    assert data["updateUser"]["posts"] == [
        {"title": "a2", "score": 1.5}, {"title": "b2", "score": 1.5}, {"title": "e", "score": 9.0},
        {"title": "f", "score": 1.5}, {"title": "g", "score": 1.5},
    ]  # fmt: skip
    # Moving a post to another user through connect keeps its required author.
    moved = service.data(
        "mutation ($user: ID, $post: ID) { updateUser(where: {id: $user}, "
        "data: {posts: {connect: [{id: $post}]}}) { posts { title } } }",
        {"user": other["id"], "post": posts["a"]},
    )
    assert moved["updateUser"]["posts"] == [{"title": "a2"}]


def test_disconnecting_a_required_relation_fails_with_3042(service: Service) -> None:
    user = service.data(
        'mutation { createUser(data: {email: "req@x.io", posts: {create: [{title: "keep"}]}}) '
        "{ id posts { id } } }"
    )["createUser"]
    result = service.query(
        "mutation ($user: ID, $post: ID) { updateUser(where: {id: $user}, "
        "data: {posts: {disconnect: [{id: $post}]}}) { id } }",
        {"user": user["id"], "post": user["posts"][0]["id"]},
    )
    assert result["errors"][0]["code"] == 3042
    assert result["errors"][0]["message"] == (
        "The change you are trying to make would violate the required relation 'UserPosts' "
        "between Post and User"
    )
    assert service.data(f'{{ user(where: {{id: "{user["id"]}"}}) {{ posts {{ title }} }} }}') == {
        "user": {"posts": [{"title": "keep"}]}
    }


def test_nested_operation_on_a_node_that_is_not_connected_fails_with_3041(service: Service) -> None:
    a = create_user(service, "nc1@x.io")
    b = service.data(
        'mutation { createUser(data: {email: "nc2@x.io", posts: {create: [{title: "t"}]}}) '
        "{ posts { id } } }"
    )
    result = service.query(
        "mutation ($user: ID, $post: ID) { updateUser(where: {id: $user}, "
        'data: {posts: {update: [{where: {id: $post}, data: {title: "x"}}]}}) { id } }',
        {"user": a["id"], "post": b["createUser"]["posts"][0]["id"]},
    )
    assert result["errors"][0]["code"] == 3041


def test_to_one_nested_operations(service: Service) -> None:
    user = create_user(service, "one@x.io")
    where = f'where: {{id: "{user["id"]}"}}'
    q = "{ account { iban } }"
    data = service.data(
        f'mutation {{ updateUser({where}, data: {{account: {{create: {{iban: "DE1"}}}}}}) {q} }}'
    )
    assert data == {"updateUser": {"account": {"iban": "DE1"}}}
    data = service.data(
        f'mutation {{ updateUser({where}, data: {{account: {{update: {{iban: "DE2"}}}}}}) {q} }}'
    )
    assert data == {"updateUser": {"account": {"iban": "DE2"}}}
    data = service.data(
        f"mutation {{ updateUser({where}, data: {{account: "
        f'{{upsert: {{update: {{iban: "DE3"}}, create: {{iban: "no"}}}}}}}}) {q} }}'
    )
    assert data == {"updateUser": {"account": {"iban": "DE3"}}}
    # The account's owner is required: disconnecting it would orphan the account.
    error = service.error(
        f"mutation {{ updateUser({where}, data: {{account: {{disconnect: true}}}}) {q} }}"
    )
    assert error["code"] == 3042
    data = service.data(
        f"mutation {{ updateUser({where}, data: {{account: {{delete: true}}}}) {q} }}"
    )
    assert data == {"updateUser": {"account": None}}
    assert service.data('{ accounts(where: {iban_starts_with: "DE"}) { id } }') == {"accounts": []}


def test_set_replaces_a_many_to_many_relation(service: Service) -> None:
    for name in ("s1", "s2", "s3"):
        service.data(f'mutation {{ createLabel(data: {{name: "{name}"}}) {{ id }} }}')
    author = create_user(service, "set@x.io")
    post = service.data(
        f'mutation {{ createPost(data: {{title: "set", '
        f'author: {{connect: {{id: "{author["id"]}"}}}}, '
        'labels: {connect: [{name: "s1"}, {name: "s2"}]}}) { id } }'
    )["createPost"]
    data = service.data(
        f'mutation {{ updatePost(where: {{id: "{post["id"]}"}}, '
        'data: {labels: {set: [{name: "s2"}, {name: "s3"}]}}) '
        "{ labels(orderBy: name_ASC) { name } } }"
    )
    assert data == {"updatePost": {"labels": [{"name": "s2"}, {"name": "s3"}]}}
    data = service.data(
        f'mutation {{ updatePost(where: {{id: "{post["id"]}"}}, '
        'data: {labels: {disconnect: [{name: "s2"}]}}) '
        "{ labels { name } } }"
    )
    assert data == {"updatePost": {"labels": [{"name": "s3"}]}}


def test_connect_to_a_missing_node_fails_and_writes_nothing(service: Service) -> None:
    result = service.query(
        'mutation { createUser(data: {email: "ghost-link@x.io", '
        'posts: {connect: [{id: "nope"}]}}) { id } }'
    )
    assert result["errors"][0]["code"] == 3039
    assert service.data('{ users(where: {email: "ghost-link@x.io"}) { id } }') == {"users": []}


def test_each_root_mutation_is_atomic_and_the_rest_still_runs(service: Service) -> None:
    result = service.query(
        """mutation {
          a: createLabel(data: {name: "atomic-a"}) { name }
          b: createLabel(data: {name: "atomic-a"}) { name }
          c: createLabel(data: {name: "atomic-c"}) { name }
        }"""
    )
    assert result["data"] is None  # createLabel is non-null, so an error nulls the data
    assert [e["path"] for e in result["errors"]] == [["b"]]
    names = service.data(
        '{ labels(where: {name_starts_with: "atomic"}, orderBy: name_ASC) { name } }'
    )
    assert names == {"labels": [{"name": "atomic-a"}, {"name": "atomic-c"}]}
