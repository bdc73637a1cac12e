"""Queries: GraphQL in, JSON out, against a deployed service on real PostgreSQL."""

from __future__ import annotations

import pytest

from tests.runtime.opencrud.conftest import Service

DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String
  age: Int
  score: Float
  isAdmin: Boolean! @default(value: false)
  role: Role! @default(value: USER)
  tags: [String] @scalarList(strategy: RELATION)
  profile: Json
  birthday: DateTime
  posts: [Post!]! @relation(name: "UserPosts", onDelete: CASCADE)
  createdAt: DateTime! @createdAt
  updatedAt: DateTime! @updatedAt
}

type Post {
  id: ID! @id
  title: String!
  published: Boolean! @default(value: false)
  author: User @relation(name: "UserPosts", link: INLINE)
  tags: [Tag!]!
}

type Tag {
  id: ID! @id
  label: String! @unique
  posts: [Post!]!
}

enum Role {
  USER
  ADMIN
}
"""


@pytest.fixture(scope="module", autouse=True)
def rows(service: Service) -> None:
    users = [
        ("u1", "ada@example.com", "Ada", 36, 1.5, True, "ADMIN", '{"a": 1}', "1815-12-10 00:00:00"),
        ("u2", "bob@example.com", "Bob", 25, 2.25, False, "USER", None, None),
        ("u3", "cy@example.com", None, 25, None, False, "USER", "[1,2]", None),
        ("u4", "dee@example.com", "Dee", 41, 0.5, False, "USER", None, "2000-01-01 12:30:00.123"),
    ]
    columns = ("id", "email", "name", "age", "score", "isAdmin", "role", "profile", "birthday")
    for u in users:
        service.insert(
            "User", **dict(zip(columns, u, strict=True)), createdAt="now", updatedAt="now"
        )
    for i, tag in enumerate(["x", "y", "z"]):
        service.insert("User_tags", nodeId="u1", position=(i + 1) * 1000, value=tag)
    posts = [("p1", "Hello", True, "u1"), ("p2", "World", False, "u1"), ("p3", "Zed", True, "u2")]
    posts.append(("p4", "Alone", False, None))
    for i, title, published, author in posts:
        service.insert("Post", id=i, title=title, published=published, author=author)
    for i, label in [("t1", "red"), ("t2", "blue")]:
        service.insert("Tag", id=i, label=label)
    for post, tag in [("p1", "t1"), ("p1", "t2"), ("p2", "t1")]:
        service.insert("_PostToTag", A=post, B=tag)
    service.conn.commit()


def ids(items: list[dict]) -> list[str]:
    return [i["id"] for i in items]


def test_single_user_by_unique_field_with_every_scalar(service: Service) -> None:
    data = service.data(
        '{ user(where: {email: "ada@example.com"}) '
        "{ id name age score isAdmin role tags profile birthday } }"
    )
    assert data == {
        "user": {
            "id": "u1", "name": "Ada", "age": 36, "score": 1.5, "isAdmin": True, "role": "ADMIN",
            "tags": ["x", "y", "z"], "profile": {"a": 1}, "birthday": "1815-12-10T00:00:00.000Z",
        }
    }  # fmt: skip


def test_single_user_that_does_not_exist_is_null(service: Service) -> None:
    assert service.data('{ user(where: {id: "nope"}) { id } }') == {"user": None}


def test_aliases_and_typename_are_written_by_the_database(service: Service) -> None:
    data = service.data('{ a: user(where: {id: "u2"}) { who: name kind: __typename tags } }')
    assert data == {"a": {"who": "Bob", "kind": "User", "tags": []}}


def test_single_user_with_a_filtered_relation_binds_each_value_to_its_place(
    service: Service,
) -> None:
    """The relation's filter sits before the unique condition in the statement's text, so its
    parameters must come first (they were bound the other way round: `text = boolean`)."""
    query = '{ user(where: {email: "ada@example.com"}) { posts(where: {published: true}) { id } } }'
    assert service.data(query) == {"user": {"posts": [{"id": "p1"}]}}
    query = """query($e: String, $p: Boolean) {
      user(where: {email: $e}) { posts(where: {published: $p, title_not: "x"}) { id } } }"""
    assert service.data(query, {"e": "ada@example.com", "p": False}) == {
        "user": {"posts": [{"id": "p2"}]}
    }


def test_where_unique_needs_exactly_one_field(service: Service) -> None:
    error = service.error("{ user(where: {}) { id } }")
    assert error["code"] == 3040
    error = service.error('{ user(where: {id: "u1", email: "ada@example.com"}) { id } }')
    assert error["code"] == 3045
    assert error["message"].startswith(
        "You provided more than one field for the unique selector on User."
    )


def test_plural_with_default_order_by_id(service: Service) -> None:
    assert ids(service.data("{ users { id } }")["users"]) == ["u1", "u2", "u3", "u4"]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('{name: "Bob"}', ["u2"]),
        ('{name_not: "Bob"}', ["u1", "u4"]),
        ("{name: null}", ["u3"]),
        ("{name_not: null}", ["u1", "u2", "u4"]),
        ('{name_in: ["Ada", "Dee"]}', ["u1", "u4"]),
        ('{name_not_in: ["Ada"]}', ["u2", "u4"]),
        ("{name_in: []}", []),
        ('{name_lt: "Bob"}', ["u1"]),
        ('{name_lte: "Bob"}', ["u1", "u2"]),
        ('{name_gt: "Bob"}', ["u4"]),
        ('{name_gte: "Bob"}', ["u2", "u4"]),
        ('{name_contains: "e"}', ["u4"]),
        ('{name_not_contains: "e"}', ["u1", "u2"]),
        ('{email_starts_with: "b"}', ["u2"]),
        ('{email_not_starts_with: "b"}', ["u1", "u3", "u4"]),
        ('{name_ends_with: "a"}', ["u1"]),
        ('{name_not_ends_with: "a"}', ["u2", "u4"]),
        ("{age: 25}", ["u2", "u3"]),
        ("{age_gt: 30}", ["u1", "u4"]),
        ("{age_in: [36, 41]}", ["u1", "u4"]),
        ("{score_gte: 1.5}", ["u1", "u2"]),
        ("{isAdmin: true}", ["u1"]),
        ("{isAdmin_not: true}", ["u2", "u3", "u4"]),
        ("{role: ADMIN}", ["u1"]),
        ("{role_not_in: [ADMIN]}", ["u2", "u3", "u4"]),
        ('{birthday_lt: "1900"}', ["u1"]),
        ('{birthday_gte: "2000-01-01T12:30:00.123Z"}', ["u4"]),
        ('{id_in: ["u1", "u3"]}', ["u1", "u3"]),
        ('{AND: [{age: 25}, {name: "Bob"}]}', ["u2"]),
        ('{OR: [{age: 41}, {name: "Bob"}]}', ["u2", "u4"]),
        ('{NOT: [{age: 25}, {name: "Ada"}]}', ["u4"]),
        ("{AND: []}", ["u1", "u2", "u3", "u4"]),
        ("{OR: []}", []),
        ("{NOT: []}", ["u1", "u2", "u3", "u4"]),
        ("{NOT: {age: 25}}", ["u1", "u4"]),
        ("{name_in: null}", ["u1", "u2", "u3", "u4"]),
        ("{posts_some: {published: true}}", ["u1", "u2"]),
        ("{posts_none: {published: true}}", ["u3", "u4"]),
        ("{posts_every: {published: true}}", ["u2", "u3", "u4"]),
        ('{posts_some: {tags_some: {label: "blue"}}}', ["u1"]),
    ],
)
def test_filters(service: Service, where: str, expected: list[str]) -> None:
    assert ids(service.data(f"{{ users(where: {where}) {{ id }} }}")["users"]) == expected


def test_to_one_relation_filters(service: Service) -> None:
    assert ids(service.data('{ posts(where: {author: {name: "Ada"}}) { id } }')["posts"]) == [
        "p1",
        "p2",
    ]
    assert ids(service.data("{ posts(where: {author: null}) { id } }")["posts"]) == ["p4"]


def test_to_many_relation_cannot_be_filtered_by_null(service: Service) -> None:
    error = service.error("{ users(where: {posts_some: null}) { id } }")
    assert error["code"] == 3033


def test_order_by_breaks_ties_by_id(service: Service) -> None:
    data = service.data("{ a: users(orderBy: age_ASC) { id } d: users(orderBy: age_DESC) { id } }")
    assert ids(data["a"]) == ["u2", "u3", "u1", "u4"]
    # Ties stay id ascending in a descending order (Prisma's OrderBySpec).
    assert ids(data["d"]) == ["u4", "u1", "u2", "u3"]


def test_pagination(service: Service) -> None:
    q = service.data(
        """{
          first: users(first: 2) { id }
          last: users(last: 2) { id }
          skip: users(skip: 1, first: 2) { id }
          skipLast: users(skip: 1, last: 2) { id }
          after: users(after: "u2") { id }
          before: users(before: "u3") { id }
          window: users(after: "u1", before: "u4") { id }
          ordered: users(orderBy: age_DESC, after: "u1", first: 1) { id }
        }"""
    )
    assert {k: ids(v) for k, v in q.items()} == {
        "first": ["u1", "u2"], "last": ["u3", "u4"], "skip": ["u2", "u3"],
        "skipLast": ["u2", "u3"], "after": ["u3", "u4"], "before": ["u1", "u2"],
        "window": ["u2", "u3"], "ordered": ["u2"],
    }  # fmt: skip


def test_pagination_argument_errors(service: Service) -> None:
    assert service.error("{ users(first: 1, last: 1) { id } }")["code"] == 3014
    assert service.error("{ users(first: -1) { id } }")["code"] == 3026
    assert service.error("{ users(last: -1) { id } }")["code"] == 3027
    assert service.error("{ users(skip: -1) { id } }")["code"] == 3028


def test_nested_relations_with_arguments(service: Service) -> None:
    data = service.data(
        """{ users(where: {id_in: ["u1", "u3"]}) {
              id
              posts(orderBy: title_DESC) { title author { id } tags(orderBy: label_ASC) { label } }
              first: posts(first: 1) { id }
              none: posts(where: {title: "nothing"}) { id }
        } }"""
    )
    assert data == {
        "users": [
            {
                "id": "u1",
                "posts": [
                    {"title": "World", "author": {"id": "u1"}, "tags": [{"label": "red"}]},
                    {
                        "title": "Hello",
                        "author": {"id": "u1"},
                        "tags": [{"label": "blue"}, {"label": "red"}],
                    },
                ],
                "first": [{"id": "p1"}],
                "none": [],
            },
            {"id": "u3", "posts": [], "first": [], "none": []},
        ]
    }


def test_connection_with_page_info_edges_and_count(service: Service) -> None:
    data = service.data(
        """{
          page: usersConnection(first: 2) {
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { id posts { id } } }
            aggregate { count }
          }
          tail: usersConnection(last: 3) {
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { node { id } }
          }
          all: usersConnection(where: {age: 25}) {
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            aggregate { count }
            __typename
          }
        }"""
    )
    assert data["page"] == {
        "pageInfo": {
            "hasNextPage": True,
            "hasPreviousPage": False,
            "startCursor": "u1",
            "endCursor": "u2",
        },
        "edges": [
            {"cursor": "u1", "node": {"id": "u1", "posts": [{"id": "p1"}, {"id": "p2"}]}},
            {"cursor": "u2", "node": {"id": "u2", "posts": [{"id": "p3"}]}},
        ],
        "aggregate": {"count": 2},
    }
    assert data["tail"] == {
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": True,
            "startCursor": "u2",
            "endCursor": "u4",
        },
        "edges": [{"node": {"id": "u2"}}, {"node": {"id": "u3"}}, {"node": {"id": "u4"}}],
    }
    assert data["all"] == {
        "pageInfo": {
            "hasNextPage": False,
            "hasPreviousPage": False,
            "startCursor": "u2",
            "endCursor": "u3",
        },
        "aggregate": {"count": 2},
        "__typename": "UserConnection",
    }


def test_node_finds_any_model_by_id(service: Service) -> None:
    data = service.data(
        '{ a: node(id: "p3") { id __typename ... on Post { title } ... on User { email } } '
        'b: node(id: "u2") { id ... on User { email } } c: node(id: "nope") { id } }'
    )
    assert data == {
        "a": {"id": "p3", "__typename": "Post", "title": "Zed"},
        "b": {"id": "u2", "email": "bob@example.com"},
        "c": None,
    }


def test_variables_become_parameters_and_the_sql_is_reused(service: Service) -> None:
    query = "query ($where: UserWhereInput, $n: Int) { users(where: $where, first: $n) { id } }"
    first = service.data(query, {"where": {"name_in": ["Ada", "Bob"]}, "n": 5})
    entries = [k for k in service.api.compiled if k[0] == query]
    second = service.data(query, {"where": {"name_in": ["Dee", "Bob"]}, "n": 5})
    assert ids(first["users"]) == ["u1", "u2"]
    assert ids(second["users"]) == ["u2", "u4"]
    # The same shape of variables reuses the compiled statement; its SQL holds no values.
    assert [k for k in service.api.compiled if k[0] == query] == entries
    (compiled,) = service.api.compiled.lookup(entries[0])
    assert "Ada" not in compiled.sql and "%s" in compiled.sql


def test_fragments_and_directives(service: Service) -> None:
    data = service.data(
        """query ($withPosts: Boolean!) {
          user(where: {id: "u2"}) {
            ...Basics posts @include(if: $withPosts) { id } age @skip(if: true)
          }
        }
        fragment Basics on User { id name }""",
        {"withPosts": True},
    )
    assert data == {"user": {"id": "u2", "name": "Bob", "posts": [{"id": "p3"}]}}


def test_fragments_on_connection_types(service: Service) -> None:
    data = service.data(
        """{ usersConnection(first: 1) { ...Page } }
        fragment Page on UserConnection {
          edges { ... on UserEdge { node { ...Who } } }
          pageInfo { ... on PageInfo { hasNextPage } }
        }
        fragment Who on User { id }"""
    )
    assert data == {
        "usersConnection": {"edges": [{"node": {"id": "u1"}}], "pageInfo": {"hasNextPage": True}}
    }


def test_a_fragment_spread_again_is_expanded_once(service: Service) -> None:
    """A chain of fragments each spreading the next twice: 2**40 expansions if every spread is
    followed, so this only finishes when each fragment is expanded once per selection."""
    chain = " ".join(f"fragment F{i} on User {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    last = "fragment F40 on User { id name }"
    data = service.data(f'{{ user(where: {{id: "u2"}}) {{ ...F0 }} }} {chain} {last}')
    assert data == {"user": {"id": "u2", "name": "Bob"}}
