"""Import, export and reset in the Normalized Data Format, against real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from psycopg import sql

from runtime import ndf
from runtime.datamodel import Schema, parse_datamodel
from runtime.migrations import migration_sql, plan_migration

DATAMODEL = """
enum Role { USER ADMIN }

type User {
  id: ID! @id
  email: String! @unique
  name: String
  role: Role! @default(value: USER)
  score: Float
  meta: Json
  joinedAt: DateTime
  createdAt: DateTime! @createdAt
  tags: [String] @scalarList(strategy: RELATION)
  posts: [Post!]! @relation(name: "Authorship")
  friends: [User] @relation(name: "Friends", link: TABLE)
}

type Post {
  id: ID! @id
  title: String!
  author: User @relation(name: "Authorship", link: INLINE)
  categories: [Category] @relation(link: TABLE)
}

type Category {
  id: ID! @id
  name: String!
}
"""


@pytest.fixture
def service(database) -> Iterator[tuple[object, str, Schema]]:
    result = parse_datamodel(DATAMODEL)
    assert result.ok, result.errors
    schema_name = f"ndf${secrets.token_hex(3)}"
    statements = migration_sql(
        schema_name, Schema(), result.schema, plan_migration(Schema(), result.schema)
    )
    with database.connect() as conn:
        with conn.transaction():
            conn.execute(f'CREATE SCHEMA "{schema_name}"')
            for statement in statements:
                conn.execute(statement)
        yield conn, schema_name, result.schema
        conn.execute(f'DROP SCHEMA "{schema_name}" CASCADE')


NODES = [
    {
        "_typeName": "User",
        "id": "ada",
        "email": "ada@example.com",
        "name": "Ada",
        "role": "ADMIN",
        "score": 1.5,
        "meta": {"languages": ["en", "fr"]},
        "joinedAt": "2020-02-03T04:05:06.789Z",
        "createdAt": "2019-01-01T00:00:00.000Z",
    },
    {
        "_typeName": "User",
        "id": "bob",
        "email": "bob@example.com",
        "role": "USER",
        "createdAt": "2019-01-02T00:00:00.000Z",
    },
    {"_typeName": "Post", "id": "p1", "title": "Notes"},
    {"_typeName": "Category", "id": "c1", "name": "Maths"},
]
LISTS = [{"_typeName": "User", "id": "ada", "tags": ["a", "b"]}]
RELATIONS = [
    [
        {"_typeName": "Post", "id": "p1", "fieldName": "author"},
        {"_typeName": "User", "id": "ada", "fieldName": "posts"},
    ],
    [
        {"_typeName": "Category", "id": "c1"},
        {"_typeName": "Post", "id": "p1", "fieldName": "categories"},
    ],
    [
        {"_typeName": "User", "id": "ada", "fieldName": "friends"},
        {"_typeName": "User", "id": "bob", "fieldName": "friends"},
    ],
]


def export_all(conn, schema_name: str, schema: Schema, file_type: str) -> list:
    elements, cursor = [], {"table": 0, "row": 0, "field": 0, "array": 0}
    while cursor != ndf.DONE:
        page = ndf.export_page(conn, schema_name, schema, file_type, cursor)
        elements += page["out"]["jsonElements"]
        cursor = page["cursor"]
    return elements


def test_nodes_lists_and_relations_round_trip(service):
    conn, schema_name, schema = service

    assert ndf.import_values(conn, schema_name, schema, "nodes", NODES) == []
    assert ndf.import_values(conn, schema_name, schema, "lists", LISTS) == []
    assert ndf.import_values(conn, schema_name, schema, "relations", RELATIONS) == []

    nodes = export_all(conn, schema_name, schema, "nodes")
    assert sorted(nodes, key=lambda n: n["id"]) == sorted(NODES, key=lambda n: n["id"])
    assert export_all(conn, schema_name, schema, "lists") == LISTS
    relations = export_all(conn, schema_name, schema, "relations")
    assert len(relations) == 3
    assert [
        {"_typeName": "Post", "id": "p1", "fieldName": "author"},
        {"_typeName": "User", "id": "ada", "fieldName": "posts"},
    ] in relations
    query = sql.SQL('SELECT "author" FROM {}.{}').format(
        sql.Identifier(schema_name), sql.Identifier("Post")
    )
    author = conn.execute(query).fetchone()[0]
    assert author == "ada"


def test_lists_are_appended_in_order(service):
    conn, schema_name, schema = service
    ndf.import_values(conn, schema_name, schema, "nodes", NODES[:1])

    ndf.import_values(conn, schema_name, schema, "lists", LISTS)
    ndf.import_values(
        conn, schema_name, schema, "lists", [{"_typeName": "User", "id": "ada", "tags": ["c"]}]
    )

    assert export_all(conn, schema_name, schema, "lists")[0]["tags"] == ["a", "b", "c"]


def test_bad_values_are_reported_and_the_good_ones_land(service):
    conn, schema_name, schema = service
    values = [
        {"_typeName": "Nope", "id": "x"},
        {"_typeName": "User", "id": "u1", "email": "one@example.com", "shoeSize": 44},
        {"_typeName": "User", "id": "u2", "email": "two@example.com", "createdAt": 7},
        {"_typeName": "User", "id": "u3", "email": "three@example.com"},
        {"_typeName": "User", "id": "u4", "email": "three@example.com"},
        "not an object",
    ]

    errors = ndf.import_values(conn, schema_name, schema, "nodes", values)

    assert len(errors) == 5
    assert "unknown _typeName 'Nope'" in errors[0]
    assert "no scalar field 'shoeSize'" in errors[1]
    assert "DateTime" in errors[2]
    assert "duplicate key" in errors[3]
    assert "JSON object" in errors[4]
    ids = [n["id"] for n in export_all(conn, schema_name, schema, "nodes")]
    assert ids == ["u3"]


def test_a_relation_to_a_missing_node_is_an_error(service):
    conn, schema_name, schema = service
    ndf.import_values(conn, schema_name, schema, "nodes", NODES)

    errors = ndf.import_values(
        conn,
        schema_name,
        schema,
        "relations",
        [
            [
                {"_typeName": "Post", "id": "ghost", "fieldName": "author"},
                {"_typeName": "User", "id": "ada", "fieldName": "posts"},
            ]
        ],
    )

    assert len(errors) == 1 and "no Post with id 'ghost'" in errors[0]


def test_export_pages_through_large_tables_with_a_cursor(service, monkeypatch):
    conn, schema_name, schema = service
    monkeypatch.setattr(ndf, "PAGE_ROWS", 3)
    monkeypatch.setattr(ndf, "PAGE_CHARS", 200)
    users = [
        {
            "_typeName": "User",
            "id": f"u{i:02d}",
            "email": f"u{i}@example.com",
            "createdAt": "2019-01-01T00:00:00.000Z",
        }
        for i in range(10)
    ]
    ndf.import_values(conn, schema_name, schema, "nodes", users)

    first = ndf.export_page(conn, schema_name, schema, "nodes", None)
    exported = export_all(conn, schema_name, schema, "nodes")

    assert first["isFull"] is True
    assert first["cursor"] != ndf.DONE
    assert first["out"]["size"] > 200
    assert [n["id"] for n in exported] == [u["id"] for u in users]


def test_bad_requests_are_clear_errors(service):
    conn, schema_name, schema = service

    with pytest.raises(ndf.NdfError, match="fileType must be one of"):
        ndf.export_page(conn, schema_name, schema, "everything", None)
    with pytest.raises(ndf.NdfError, match="values must be a JSON array"):
        ndf.import_values(conn, schema_name, schema, "nodes", {"not": "a list"})
    with pytest.raises(ndf.NdfError, match=r"cursor\.table and cursor\.row must be integers"):
        ndf.export_page(conn, schema_name, schema, "nodes", {"table": "x"})


def test_reset_data_empties_every_table_and_keeps_them(service):
    conn, schema_name, schema = service
    ndf.import_values(conn, schema_name, schema, "nodes", NODES)
    ndf.import_values(conn, schema_name, schema, "lists", LISTS)
    ndf.import_values(conn, schema_name, schema, "relations", RELATIONS)

    ndf.reset_data(conn, schema_name)

    for file_type in ndf.FILE_TYPES:
        assert export_all(conn, schema_name, schema, file_type) == []
    assert ndf.import_values(conn, schema_name, schema, "nodes", NODES) == []
