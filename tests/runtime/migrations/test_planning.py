"""Migration planning and data checks: pure functions over two schemas, no database."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from runtime.datamodel import Schema, parse_datamodel
from runtime.errors import PrismaError
from runtime.migrations import check_migration, plan_migration


def schema_of(text: str) -> Schema:
    result = parse_datamodel(text)
    assert result.errors == []
    assert result.schema is not None
    return result.schema


def plan(old: str, new: str) -> list[dict]:
    return [s.as_dict() for s in plan_migration(schema_of(old), schema_of(new))]


def kinds(steps: list[dict]) -> list[tuple]:
    return [(s["type"], s.get("model") or s.get("name"), s.get("name")) for s in steps]


BASE = "type User { id: ID! @id  name: String! }"


@dataclass
class Facts:
    """Stated facts about existing data: non-empty tables and columns holding nulls."""

    rows: set[str] = field(default_factory=set)
    nulls: set[tuple[str, str]] = field(default_factory=set)
    duplicates: set[tuple[str, str]] = field(default_factory=set)
    values: set[tuple[str, str, str]] = field(default_factory=set)

    def has_rows(self, table: str) -> bool:
        return table in self.rows

    def has_nulls(self, table: str, column: str) -> bool:
        return (table, column) in self.nulls

    def has_values(self, table: str, column: str) -> bool:
        return table in self.rows and (table, column) not in self.nulls

    def has_duplicates(self, table: str, column: str) -> bool:
        return (table, column) in self.duplicates

    def has_value(self, table: str, column: str, value: str) -> bool:
        return (table, column, value) in self.values

    def has_pairs(self, table: str, column_a: str, column_b: str) -> bool:
        return table in self.rows

    def has_unlinked(
        self, model_table: str, id_column: str, table: str, this_column: str, other_column: str
    ) -> bool:
        return model_table in self.rows and (table, this_column) in self.nulls


def test_a_new_service_creates_every_model_field_enum_and_relation() -> None:
    steps = plan(
        "",
        """
        type User { id: ID! @id  role: Role  posts: [Post] }
        type Post { id: ID! @id  author: User! }
        enum Role { A B }
        """,
    )
    assert kinds(steps) == [
        ("CreateEnum", "Role", "Role"),
        ("CreateModel", "User", "User"),
        ("CreateField", "User", "id"),
        ("CreateField", "User", "role"),
        ("CreateField", "User", "posts"),
        ("CreateModel", "Post", "Post"),
        ("CreateField", "Post", "id"),
        ("CreateField", "Post", "author"),
        ("CreateRelation", "PostToUser", "PostToUser"),
    ]
    relation = steps[-1]
    assert relation["leftModel"] == "Post"
    assert relation["rightModel"] == "User"
    assert relation["after"] == {"type": "Inline", "model": "Post", "column": "author"}
    role = steps[3]
    assert role["enum"] == "Role"
    assert role["typeName"] == "Role"


def test_an_unchanged_datamodel_plans_nothing() -> None:
    assert plan(BASE, BASE) == []


def test_an_added_field_is_one_create_field() -> None:
    steps = plan(BASE, "type User { id: ID! @id  name: String!  age: Int @default(value: 3) }")
    assert steps == [
        {
            "type": "CreateField",
            "model": "User",
            "name": "age",
            "typeName": "Int",
            "isRequired": False,
            "isList": False,
            "unique": False,
            "enum": None,
            "default": "3",
            "relation": None,
        }
    ]


def test_update_field_carries_only_what_changed() -> None:
    (step,) = plan(BASE, "type User { id: ID! @id  name: String @unique }")
    assert step == {
        "type": "UpdateField",
        "model": "User",
        "name": "name",
        "newName": None,
        "typeName": None,
        "isRequired": False,
        "isList": None,
        "unique": True,
        "enum": None,
        "default": None,
        "relation": None,
    }


def test_removed_types_and_fields_are_deleted_with_their_relations() -> None:
    steps = plan(
        "type User { id: ID! @id  name: String  posts: [Post] }  type Post { id: ID! @id }",
        "type User { id: ID! @id }",
    )
    assert kinds(steps) == [
        ("DeleteRelation", "PostToUser", "PostToUser"),
        ("DeleteField", "User", "name"),
        ("DeleteField", "User", "posts"),
        ("DeleteModel", "Post", "Post"),
    ]


def test_renames_follow_the_rename_directive() -> None:
    steps = plan(
        BASE,
        'type Person @rename(oldName: "User") { id: ID! @id  '
        'fullName: String! @rename(oldName: "name") }',
    )
    assert kinds(steps) == [
        ("UpdateModel", "User", "User"),
        ("UpdateField", "Person", "name"),
    ]
    assert steps[0]["newName"] == "Person"
    assert steps[1]["newName"] == "fullName"


def test_changing_a_relation_from_inline_to_table_is_an_update_relation() -> None:
    steps = plan(
        "type A { id: ID! @id  b: B }  type B { id: ID! @id  as: [A] }",
        "type A { id: ID! @id  b: B @relation(link: TABLE) }  type B { id: ID! @id  as: [A] }",
    )
    (step,) = steps
    assert step["type"] == "UpdateRelation"
    assert step["before"]["type"] == "Inline"
    assert step["after"]["type"] == "LinkTable"


def test_enum_changes_are_update_and_delete_enum() -> None:
    steps = plan(
        "type A { id: ID! @id }  enum E { X Y }  enum F { Z }",
        "type A { id: ID! @id }  enum E { X Y W }",
    )
    assert kinds(steps) == [("UpdateEnum", "E", "E"), ("DeleteEnum", "F", "F")]
    assert steps[0]["values"] == ["X", "Y", "W"]


def test_deleting_a_model_with_rows_warns_about_data_loss() -> None:
    old = schema_of("type A { id: ID! @id }  type B { id: ID! @id }")
    new = schema_of("type B { id: ID! @id }")
    steps = plan_migration(old, new)
    assert check_migration(old, new, steps, Facts()).warnings == []
    check = check_migration(old, new, steps, Facts(rows={"A"}))
    assert [w.as_dict() for w in check.warnings] == [
        {
            "type": "A",
            "field": None,
            "description": "You already have nodes for this model. This change will result in "
            "data loss.",
        }
    ]


def test_deleting_or_retyping_a_field_with_rows_warns() -> None:
    old = schema_of("type A { id: ID! @id  x: String  y: String }")
    new = schema_of("type A { id: ID! @id  y: Int }")
    check = check_migration(old, new, plan_migration(old, new), Facts(rows={"A"}))
    assert [(w.type, w.field) for w in check.warnings] == [("A", "x"), ("A", "y")]
    assert all("data loss" in w.description for w in check.warnings)


def test_a_new_required_field_on_a_table_with_rows_is_prefilled_with_a_warning() -> None:
    old = schema_of(BASE)
    new = schema_of("type User { id: ID! @id  name: String!  age: Int! }")
    check = check_migration(old, new, plan_migration(old, new), Facts(rows={"User"}))
    (warning,) = check.warnings
    assert warning.field == "age"
    assert warning.description.endswith("The fields will be pre-filled with the value `0`.")


def test_a_new_required_unique_field_on_a_table_with_rows_is_an_error() -> None:
    old = schema_of(BASE)
    new = schema_of("type User { id: ID! @id  name: String!  email: String! @unique }")
    check = check_migration(old, new, plan_migration(old, new), Facts(rows={"User"}))
    (error,) = check.errors
    assert error.field == "email"


def test_dropping_a_relation_with_links_warns() -> None:
    old = schema_of("type A { id: ID! @id  bs: [B] }  type B { id: ID! @id }")
    new = schema_of("type A { id: ID! @id }  type B { id: ID! @id }")
    steps = plan_migration(old, new)
    assert check_migration(old, new, steps, Facts(rows={"A", "B"})).warnings == []
    (warning,) = check_migration(old, new, steps, Facts(rows={"_AToB"})).warnings
    assert warning.description.startswith("You already have nodes for this relation.")


def test_a_created_at_field_without_its_directive_warns_even_without_data() -> None:
    """DestructiveChanges.missingCreatedAtOrUpdatedAtDirectives (datamodel 1.1)."""
    old = schema_of(BASE)
    new = schema_of(
        "type User { id: ID! @id  name: String! }  "
        "type Log { id: ID! @id  createdAt: DateTime  updatedAt: DateTime! @updatedAt }"
    )
    (warning,) = check_migration(old, new, plan_migration(old, new), Facts()).warnings
    assert warning.as_dict() == {
        "type": "Log",
        "field": "createdAt",
        "description": "You are adding the field `createdAt` but is missing the directive "
        "`@createdAt`. Please specify the field as `createdAt: DateTime! @createdAt` if you want "
        "to track the times for when a record was created. Or deploy with `--force` to ignore "
        "this.",
    }


def test_a_relation_pointed_at_another_model_is_deleted_and_created() -> None:
    """MigrationStepsInferrer matches relations by their models too: same name, new model."""
    steps = plan(
        'type A { id: ID! @id  b: B @relation(name: "R", link: INLINE) }  '
        'type B { id: ID! @id  a: A @relation(name: "R") }',
        'type A { id: ID! @id  b: C @relation(name: "R", link: INLINE) }  '
        'type B { id: ID! @id }  type C { id: ID! @id  a: A @relation(name: "R") }',
    )
    relation_steps = [(s["type"], s["name"]) for s in steps if "Relation" in s["type"]]
    assert relation_steps == [("DeleteRelation", "R"), ("CreateRelation", "R")]


def test_naming_an_unnamed_relation_renames_it() -> None:
    steps = plan(
        "type A { id: ID! @id  b: B @relation(link: INLINE) }  type B { id: ID! @id  a: A }",
        'type A { id: ID! @id  b: B @relation(name: "Named", link: INLINE) }  '
        'type B { id: ID! @id  a: A @relation(name: "Named") }',
    )
    (step,) = [s for s in steps if "Relation" in s["type"]]
    assert (step["type"], step["name"], step["newName"]) == ("UpdateRelation", "AToB", "Named")


def test_two_named_relations_becoming_one_unnamed_is_3018() -> None:
    old = schema_of(
        'type A { id: ID! @id  b: B @relation(name: "AB1", link: INLINE)  '
        'b2: B @relation(name: "AB2", link: INLINE) }  '
        'type B { id: ID! @id  a: A @relation(name: "AB1")  a2: A @relation(name: "AB2") }'
    )
    new = schema_of("type A { id: ID! @id  b: B @relation(link: INLINE) }  type B { id: ID! @id }")
    with pytest.raises(PrismaError) as raised:
        plan_migration(old, new)
    assert raised.value.code == 3018


def test_a_removed_enum_value_in_use_is_a_global_error() -> None:
    old = schema_of("type A { id: ID! @id  e: E }  enum E { X Y }")
    new = schema_of("type A { id: ID! @id  e: E }  enum E { X }")
    check = check_migration(old, new, plan_migration(old, new), Facts(values={("A", "e", "Y")}))
    assert [e.as_dict() for e in check.errors] == [
        {
            "type": "Global",
            "field": None,
            "description": "You are deleting the value 'Y' of the enum 'E', but that value is in "
            "use.",
        }
    ]
    assert check_migration(old, new, plan_migration(old, new), Facts(rows={"A"})).errors == []


def test_a_renamed_enum_is_one_update_enum() -> None:
    steps = plan(
        "type A { id: ID! @id  e: E }  enum E { X Y }",
        'type A { id: ID! @id  e: F }  enum F @rename(oldName: "E") { X }',
    )
    (update,) = [s for s in steps if "Enum" in s["type"]]
    assert update == {"type": "UpdateEnum", "name": "E", "newName": "F", "values": ["X"]}
