"""Nested selections never add statements per parent row (issue 5, "Speed by design")."""

from __future__ import annotations

from tests.runtime.opencrud.conftest import Service

DATAMODEL = """
type User {
  id: ID! @id
  name: String!
  posts: [Post!]!
}

type Post {
  id: ID! @id
  title: String!
  author: User
  comments: [Comment!]!
}

type Comment {
  id: ID! @id
  text: String!
  post: Post
}
"""

NESTED = """{
  users(first: 1000) {
    id name
    posts(first: 20) { title author { name } comments { text } }
  }
  usersConnection { aggregate { count } edges { node { posts { id } } } }
}"""


def add_users(service: Service, start: int, count: int) -> None:
    for i in range(start, start + count):
        service.insert("User", id=f"u{i:04}", name=f"n{i}")
        for j in range(3):
            post = f"p{i:04}{j}"
            service.insert("Post", id=post, title="t", author=f"u{i:04}")
            service.insert("Comment", id=f"c{post}", text="c", post=post)
    service.conn.commit()


def statements_for(service: Service, query: str) -> tuple[int, dict]:
    before = service.statements()
    data = service.data(query)
    return service.statements() - before, data


def test_statement_count_does_not_grow_with_rows(service: Service) -> None:
    add_users(service, 0, 10)
    small, data = statements_for(service, NESTED)
    assert len(data["users"]) == 10
    add_users(service, 10, 90)
    large, data = statements_for(service, NESTED)
    assert len(data["users"]) == 100
    assert data["usersConnection"]["aggregate"]["count"] == 100
    assert all(len(u["posts"]) == 3 and u["posts"][0]["comments"] for u in data["users"])
    assert small == large == 2  # one statement per root field
