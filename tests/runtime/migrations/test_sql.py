"""SQL generation: the statements themselves, then applied to a real PostgreSQL schema."""

from __future__ import annotations

import secrets

from runtime.datamodel import Schema, parse_datamodel
from runtime.migrations import migration_sql, plan_migration
from tests.runtime.conftest import Database


def schema_of(text: str) -> Schema:
    result = parse_datamodel(text)
    assert result.errors == [], result.errors
    assert result.schema is not None
    return result.schema


def sql_for(old: str, new: str, schema: str = "svc$dev") -> list[str]:
    before, after = schema_of(old), schema_of(new)
    return migration_sql(schema, before, after, plan_migration(before, after))


SAMPLE = """
type User {
  id: ID! @id
  email: String! @unique
  age: Int
  score: Float
  role: Role! @default(value: USER)
  tags: [String] @scalarList(strategy: RELATION)
  posts: [Post!]! @relation(name: "UserPosts")
  friends: [User] @relation(name: "Friends")
  createdAt: DateTime! @createdAt
}
type Post {
  id: ID! @id
  title: String!
  author: User @relation(name: "UserPosts", link: INLINE)
}
enum Role { USER ADMIN }
"""


def test_a_new_model_is_one_create_table_with_its_plain_columns() -> None:
    statements = sql_for("", "type A { id: ID! @id  name: String!  n: Int  at: DateTime }")
    assert statements == [
        'CREATE TABLE "svc$dev"."A" ("id" varchar(25) NOT NULL, "name" text NOT NULL, '
        '"n" integer NULL, "at" timestamp(3) NULL, PRIMARY KEY ("id"))'
    ]


def test_layout_follows_prisma_for_lists_uniques_and_relations() -> None:
    statements = sql_for("", SAMPLE)
    assert 'CREATE UNIQUE INDEX "User.email._UNIQUE" ON "svc$dev"."User" ("email")' in statements
    assert any(s.startswith('CREATE TABLE "svc$dev"."User_tags" ("nodeId"') for s in statements)
    assert any(
        s.startswith('ALTER TABLE "svc$dev"."Post" ADD COLUMN "author" varchar(25) NULL')
        and s.endswith("ON DELETE SET NULL")
        for s in statements
    )
    assert any(s.startswith('CREATE TABLE "svc$dev"."_Friends" ("A"') for s in statements)
    assert (
        'CREATE UNIQUE INDEX "_Friends_AB_unique" ON "svc$dev"."_Friends" ("A", "B")' in statements
    )


def test_a_required_field_added_later_is_backfilled_then_loses_its_default() -> None:
    statements = sql_for(
        "type A { id: ID! @id }", "type A { id: ID! @id  n: Int! @default(value: 7) }"
    )
    assert statements == [
        """ALTER TABLE "svc$dev"."A" ADD COLUMN "n" integer NOT NULL DEFAULT '7'""",
        'ALTER TABLE "svc$dev"."A" ALTER COLUMN "n" DROP DEFAULT',
    ]


def test_drops_come_before_creates() -> None:
    statements = sql_for(
        "type A { id: ID! @id  bs: [B] }  type B { id: ID! @id }",
        "type A { id: ID! @id  x: String }  type C { id: ID! @id }",
    )
    assert statements == [
        'DROP TABLE IF EXISTS "svc$dev"."_AToB"',
        'DROP TABLE IF EXISTS "svc$dev"."B" CASCADE',
        'ALTER TABLE "svc$dev"."A" ADD COLUMN "x" text NULL',
        'CREATE TABLE "svc$dev"."C" ("id" varchar(25) NOT NULL, PRIMARY KEY ("id"))',
    ]


def test_identifiers_are_quoted() -> None:
    (statement,) = sql_for("", 'type A @db(name: "we\\"ird") { id: ID! @id }', schema='s"x')
    assert statement.startswith('CREATE TABLE "s""x"."we""ird"')


def test_the_generated_sql_applies_to_postgresql_step_after_step(database: Database) -> None:
    """Every version of a service's datamodel migrates from the previous one, data kept."""
    schema = f"sql_{secrets.token_hex(4)}"
    versions = [
        SAMPLE,
        SAMPLE.replace("age: Int", "age: Int!\n  nickname: String @unique"),
        SAMPLE.replace("score: Float", 'score: Float @rename(oldName: "scoreX")')
        .replace("type Post {", 'type Article @rename(oldName: "Post") {')
        .replace("posts: [Post!]!", "posts: [Article!]!")
        .replace(
            'author: User @relation(name: "UserPosts", link: INLINE)',
            'author: User @relation(name: "UserPosts", link: TABLE)',
        ),
        "type User { id: ID! @id  email: String }",
    ]
    with database.connect() as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        previous = Schema()
        for index, version in enumerate(versions):
            current = schema_of(version)
            statements = migration_sql(schema, previous, current, plan_migration(previous, current))
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
            if index == 0:
                conn.execute(
                    f"""INSERT INTO "{schema}"."User" (id, email, role, "createdAt")
                    VALUES ('u1', 'a@example.com', 'USER', now())"""  # noqa: S608 - test schema
                )
            previous = current
        tables = database.tables(schema)
        assert tables == {"User"}
        columns = database.columns(schema, "User")
        assert columns == {"id": ("character varying", False), "email": ("text", True)}
        emails = conn.execute(f'SELECT email FROM "{schema}"."User"').fetchall()  # noqa: S608
        assert emails == [("a@example.com",)]
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_renaming_an_inline_relation_field_renames_its_column() -> None:
    before = (
        'type Post { id: ID! @id  author: User @relation(name: "Writes") }  '
        'type User { id: ID! @id  posts: [Post] @relation(name: "Writes") }'
    )
    after = before.replace(
        'author: User @relation(name: "Writes")',
        'writer: User @relation(name: "Writes") @rename(oldName: "author")',
    )
    assert sql_for(before, after) == [
        'ALTER TABLE "svc$dev"."Post" RENAME COLUMN "author" TO "writer"'
    ]


def test_renaming_a_model_renames_its_table_lists_and_indexes() -> None:
    before = (
        "type User { id: ID! @id  email: String @unique  "
        "tags: [String] @scalarList(strategy: RELATION) }"
    )
    after = before.replace("type User {", 'type Person @rename(oldName: "User") {')
    assert sql_for(before, after) == [
        'ALTER TABLE "svc$dev"."User" RENAME TO "Person"',
        'ALTER INDEX IF EXISTS "svc$dev"."User.email._UNIQUE" RENAME TO "Person.email._UNIQUE"',
        'ALTER TABLE IF EXISTS "svc$dev"."User_tags" RENAME TO "Person_tags"',
    ]
