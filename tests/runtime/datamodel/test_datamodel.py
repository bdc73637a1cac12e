"""Datamodel 1.1 parsing and validation: pure functions, no database."""

from __future__ import annotations

from pathlib import Path

from runtime.datamodel import SchemaError, parse_datamodel

# The sample datamodel of shared/reference, kept in the checkout.
SAMPLE = Path(__file__).resolve().parents[1] / "opencrud" / "datamodels" / "sample.prisma"
SAMPLE_TEXT = """
type User {
  id: ID! @id
  email: String! @unique
  name: String
  isAdmin: Boolean! @default(value: false)
  role: Role! @default(value: USER)
  tags: [String] @scalarList(strategy: RELATION)
  profile: Json
  posts: [Post!]! @relation(name: "UserPosts", onDelete: CASCADE)
  createdAt: DateTime! @createdAt
  updatedAt: DateTime! @updatedAt
}

type Post {
  id: ID! @id
  title: String!
  author: User @relation(name: "UserPosts", link: INLINE)
}

enum Role {
  USER
  ADMIN
}
"""


def errors_of(text: str) -> list[SchemaError]:
    result = parse_datamodel(text)
    assert result.schema is None
    return result.errors


def test_sample_datamodel_parses_into_models_enums_and_one_inline_relation() -> None:
    result = parse_datamodel(SAMPLE_TEXT)
    assert result.errors == []
    schema = result.schema
    assert schema is not None
    assert [m.name for m in schema.models] == ["User", "Post"]
    assert schema.enum("Role").values == ("USER", "ADMIN")
    user = schema.model("User")
    assert user.id_field.name == "id"
    assert user.field("email").is_unique
    assert user.field("isAdmin").default == "false"
    assert user.field("role").kind == "enum"
    assert user.field("tags").is_list
    assert user.field("createdAt").behaviour == "createdAt"
    assert user.field("posts").on_delete == "CASCADE"
    (relation,) = schema.relations
    assert relation.name == "UserPosts"
    assert (relation.model_a, relation.model_b) == ("Post", "User")
    assert relation.manifestation() == {"type": "Inline", "model": "Post", "column": "author"}


def test_reference_sample_datamodel_is_valid() -> None:
    assert parse_datamodel(SAMPLE.read_text()).ok


def test_unknown_type_is_reported_on_the_field() -> None:
    errors = errors_of("type Todo { id: ID! @id  owner: User }")
    assert errors == [
        SchemaError(
            "Todo",
            "owner",
            "The field `owner` has the type `User` but there's no type or enum declaration with "
            "that name.",
        )
    ]


def test_duplicate_field_is_reported_case_insensitively() -> None:
    (error,) = errors_of("type A { id: ID! @id  name: String  Name: Int }")
    assert (error.type, error.field) == ("A", "Name")
    assert "duplicate fieldName" in error.description


def test_missing_id_is_reported_on_the_type() -> None:
    (error,) = errors_of("type A { name: String }")
    assert error == SchemaError(
        "A",
        None,
        "One field of the type `A` must be marked as the id field with the `@id` directive.",
    )


def test_defaults_must_match_the_field_type() -> None:
    errors = errors_of(
        """
        type A {
          id: ID! @id
          count: Int @default(value: "x")
          flag: Boolean @default(value: 3)
          ratio: Float @default(value: 2)
          role: Role @default(value: NOPE)
          data: Json @default(value: "{not json")
        }
        enum Role { USER ADMIN }
        """
    )
    assert {(e.field, e.description) for e in errors} == {
        ("count", 'The value "x" is not a valid default for fields of type Int.'),
        ("flag", "The value 3 is not a valid default for fields of type Boolean."),
        ("role", "The default value is invalid for this enum. Valid values are: USER, ADMIN."),
        ("data", 'The default value "{not json" is not valid JSON.'),
    }


def test_two_unnamed_relations_between_the_same_types_need_names() -> None:
    errors = errors_of(
        """
        type User { id: ID! @id  written: [Post]  liked: [Post] }
        type Post { id: ID! @id  author: User  likedBy: [User] }
        """
    )
    assert {(e.type, e.field) for e in errors} == {
        ("User", "written"),
        ("User", "liked"),
        ("Post", "author"),
        ("Post", "likedBy"),
    }
    assert all("must specify a `@relation` directive" in e.description for e in errors)


def test_reserved_type_names_are_refused() -> None:
    (error,) = errors_of("type Query { id: ID! @id }")
    assert error.type == "Query"
    assert "reserved type name" in error.description


def test_every_error_is_reported_at_once() -> None:
    errors = errors_of(
        """
        type Node { id: ID! @id }
        type A { name: String  other: Missing }
        type B { id: ID! @id  n: Int @default(value: true)  n: Int }
        """
    )
    assert len(errors) == 5
    assert {e.type for e in errors} == {"Node", "A", "B"}


def test_a_large_datamodel_is_refused_before_parsing() -> None:
    text = "type A { id: ID! @id }\n" + "# padding\n" * 600_000
    result = parse_datamodel(text, max_bytes=1_000_000)
    (error,) = result.errors
    assert error.type == "Global"
    assert "The datamodel is 6.0 MB, larger than this server's limit of 1.0 MB" in error.description


def test_syntax_errors_are_global_errors() -> None:
    result = parse_datamodel("type A { id: ID! @id ")
    assert result.syntax_error is not None
    (error,) = result.errors
    assert error.type == "Global"
    assert error.description.startswith("There's a syntax error in the data model.")


def test_scalar_lists_need_the_relation_strategy_on_postgres() -> None:
    (error,) = errors_of("type A { id: ID! @id  tags: [String] }")
    assert error.field == "tags"
    assert "@scalarList(strategy: RELATION)" in error.description


def test_one_to_one_relations_must_choose_a_link() -> None:
    (error,) = errors_of("type A { id: ID! @id  b: B }  type B { id: ID! @id  a: A }")
    assert error.description.startswith("The field `b` must provide a relation link mode.")


def test_link_defaults_follow_prisma() -> None:
    schema = parse_datamodel(
        """
        type A { id: ID! @id  bs: [B]  cs: [C]  d: D  e: E @relation(link: TABLE) }
        type B { id: ID! @id  a: A }
        type C { id: ID! @id  as: [A] }
        type D { id: ID! @id }
        type E { id: ID! @id }
        """
    ).schema
    assert schema is not None
    links = {r.name: r.manifestation() for r in schema.relations}
    assert links["AToB"] == {"type": "Inline", "model": "B", "column": "a"}
    assert links["AToC"]["type"] == "LinkTable"
    assert links["AToC"]["table"] == "_AToC"
    assert links["AToD"] == {"type": "Inline", "model": "A", "column": "d"}
    assert links["AToE"]["type"] == "LinkTable"


def test_named_relation_on_one_side_with_an_unnamed_back_field_is_ambiguous() -> None:
    (error,) = errors_of(
        """
        type A { id: ID! @id  b: B @relation(name: "AB", link: INLINE) }
        type B { id: ID! @id  a: A }
        """
    )
    assert "ambiguous" in error.description


def test_id_fields_must_be_required_and_of_an_id_type() -> None:
    errors = errors_of("type A { id: ID @id }  type B { id: Boolean! @id }")
    assert [e.description for e in errors] == [
        "Fields that are marked as id must be required.",
        "Fields that are marked as id must be of type `ID!`, `UUID!` or `Int!`.",
    ]


def test_self_relations_pair_by_name_and_sort_by_field() -> None:
    schema = parse_datamodel(
        """
        type Employee {
          id: ID! @id
          manager: Employee @relation(name: "Reports")
          reports: [Employee] @relation(name: "Reports")
          mentor: Employee
        }
        """
    ).schema
    assert schema is not None
    reports = schema.relation("Reports")
    assert (reports.field_a, reports.field_b) == ("manager", "reports")
    assert reports.manifestation() == {"type": "Inline", "model": "Employee", "column": "manager"}
    mentor = schema.relation("EmployeeToEmployee")
    assert mentor.manifestation()["column"] == "mentor"


def test_db_names_choose_tables_and_columns() -> None:
    schema = parse_datamodel(
        'type User @db(name: "users") { id: ID! @id @db(name: "user_id")  '
        'name: String @db(name: "full_name") }'
    ).schema
    assert schema is not None
    user = schema.model("User")
    assert user.table == "users"
    assert [f.column for f in user.fields] == ["user_id", "full_name"]


def test_unique_on_the_id_field_adds_nothing() -> None:
    schema = parse_datamodel("type A { id: ID! @id @unique }").schema
    assert schema is not None
    assert not schema.model("A").id_field.is_unique


def test_swapping_two_type_names_in_one_deploy_is_refused() -> None:
    errors = errors_of(
        'type A @rename(oldName: "B") { id: ID! @id }  type B @rename(oldName: "A") { id: ID! @id }'
    )
    # RenamingWithExistingDataSpec: one error per renamed type, Prisma's words.
    assert [e.as_dict() for e in errors] == [
        {
            "type": "A",
            "field": None,
            "description": "You renamed type `B` to `A`. But that is the old name of type `B`. "
            "Please do this in two steps.",
        },
        {
            "type": "B",
            "field": None,
            "description": "You renamed type `A` to `B`. But that is the old name of type `A`. "
            "Please do this in two steps.",
        },
    ]
