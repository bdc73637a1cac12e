"""Deploys against existing data refuse, warn or pre-fill exactly as Prisma's do.

Each test is one of Prisma's integration specs (`server/integration-tests/integration-tests-mysql/
src/test/scala/com/prisma/integration/`, named in the test's docstring) replayed against a real
runtime process: a datamodel, some data through the service's API, the next datamodel, and
Prisma's expected answer. Prisma's answers carry `migration {applied revision}`; ours applies in
the request, so `applied` differs and only the revision is compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.management.test_management_api import add

pytestmark = [pytest.mark.multiprocess]

DEPLOY = """mutation($name: String!, $types: String!, $force: Boolean) {
  deploy(input: {name: $name, stage: "dev", types: $types, force: $force}) {
    migration { revision status }
    errors { description }
    warnings { description }
  }
}"""
LIST = "@scalarList(strategy: RELATION)"
DATA_LOSS_MODEL = "You already have nodes for this model. This change will result in data loss."
DATA_LOSS_FIELD = "You already have nodes for this model. This change may result in data loss."
DATA_LOSS_RELATION = (
    "You already have nodes for this relation. This change will result in data loss."
)


def warned(*descriptions: str, revision: int | None = None) -> dict[str, Any]:
    """Prisma's answer to a deploy that warns: refused, or applied as `revision` with force."""
    return {
        "migration": None if revision is None else {"revision": revision, "status": "SUCCESS"},
        "errors": [],
        "warnings": [{"description": d} for d in descriptions],
    }


def refused(*descriptions: str) -> dict[str, Any]:
    return {"migration": None, "errors": [{"description": d} for d in descriptions], "warnings": []}


@dataclass
class Project:
    """A service as Prisma's `setupProject` makes it, and its deploy and data clients."""

    runtime: Runtime
    token: str
    name: str

    def deploy(self, types: str, force: bool = False) -> dict[str, Any]:
        answer = self.runtime.management(
            DEPLOY, {"name": self.name, "types": types, "force": force}, self.token
        )
        assert "errors" not in answer, answer
        return answer["data"]["deploy"]

    def must_succeed(self, types: str, revision: int) -> None:
        payload = self.deploy(types)
        assert payload == {
            "migration": {"revision": revision, "status": "SUCCESS"},
            "errors": [],
            "warnings": [],
        }

    def query(self, query: str) -> dict[str, Any]:
        response = self.runtime.post(f"/{self.name}/dev", {"query": query})
        assert response.status == 200, response.body
        return response.body

    def data(self, query: str) -> dict[str, Any]:
        body = self.query(query)
        assert "errors" not in body, body
        return body["data"]


@pytest.fixture
def setup_project(runtime: Runtime, token: str, service_name: str):  # type: ignore[no-untyped-def]
    def setup(types: str) -> Project:
        add(runtime, token, service_name)
        project = Project(runtime, token, service_name)
        project.must_succeed(types, 2)
        return project

    return setup


# Errors -------------------------------------------------------------------------------------

TEAM = "type Team { id: ID! @id  name: String! @unique  dummy: String }"
TEAM_UNIQUE = "type Team { id: ID! @id  name: String! @unique  dummy: String @unique }"


def test_adding_unique_to_a_field_with_duplicate_values_is_an_error(setup_project) -> None:
    """DeployingUniqueConstraintSpec: "Adding a unique constraint with violating data"."""
    project = setup_project(TEAM)
    project.data('mutation { createTeam(data: {name: "Bayern", dummy: "String"}) { name } }')
    project.data('mutation { createTeam(data: {name: "Real", dummy: "String"}) { name } }')
    assert project.deploy(TEAM_UNIQUE) == refused(
        "You are updating the field `dummy` to be unique. But there are already nodes for the "
        "model `Team` that would violate that constraint."
    )
    assert project.deploy(TEAM_UNIQUE, force=True)["migration"] is None  # force does not help
    assert project.data("{ teams { dummy } }") == {
        "teams": [{"dummy": "String"}, {"dummy": "String"}]
    }


def test_adding_unique_works_with_distinct_values_and_several_nulls(setup_project) -> None:
    """DeployingUniqueConstraintSpec: "... without violating data" / "even with multiple nulls"."""
    project = setup_project(TEAM)
    project.data('mutation { createTeam(data: {name: "Bayern"}) { name } }')
    project.data('mutation { createTeam(data: {name: "Real"}) { name } }')
    project.data('mutation { createTeam(data: {name: "Ajax", dummy: "x"}) { name } }')
    project.must_succeed(TEAM_UNIQUE, 3)
    duplicate = project.query('mutation { createTeam(data: {name: "PSV", dummy: "x"}) { name } }')
    assert duplicate["errors"][0]["code"] == 3010


def test_a_new_required_unique_field_on_existing_nodes_is_an_error(setup_project) -> None:
    """DeployingUniqueConstraintSpec: "Adding a new required String field with a unique
    constraint"."""
    project = setup_project(TEAM)
    project.data('mutation { createTeam(data: {name: "Bayern"}) { name } }')
    types = "type Team { id: ID! @id  name: String! @unique  dummy: String  new: String! @unique }"
    assert project.deploy(types) == refused(
        "You are creating a new required unique field `new`. There are already nodes for the "
        "model `Team` that would violate that constraint."
    )


A_B_OPTIONAL = """
type A { id: ID! @id  name: String! @unique  b: B @relation(link: INLINE) }
type B { id: ID! @id  name: String! @unique  a: A }
"""
A_B_REQUIRED = """
type A { id: ID! @id  name: String! @unique  b: B! @relation(link: INLINE) }
type B { id: ID! @id  name: String! @unique  a: A }
"""


def test_making_a_relation_required_when_nodes_violate_it_is_an_error(setup_project) -> None:
    """UpdateRelationDeploySpec: "... should error if there is data but the required relation
    is violated"."""
    project = setup_project(A_B_OPTIONAL)
    project.data('mutation { createA(data: {name: "A", b: {create: {name: "B"}}}) { name } }')
    project.data('mutation { createA(data: {name: "A2"}) { name } }')
    assert project.deploy(A_B_REQUIRED) == refused(
        "You are updating the field `b` to be required. But there are already nodes for the "
        "model `A` that would violate that constraint."
    )


def test_making_a_relation_required_when_every_node_has_one_works(setup_project) -> None:
    """UpdateRelationDeploySpec: "... should suceed if there is data but the required relation
    is fulfilled" (a B without an A does not matter: the other side stays optional)."""
    project = setup_project(A_B_OPTIONAL)
    project.data('mutation { createA(data: {name: "A", b: {create: {name: "B"}}}) { name } }')
    project.data('mutation { createB(data: {name: "A"}) { name } }')
    project.must_succeed(A_B_REQUIRED, 3)


def test_making_a_link_table_relation_required_checks_the_link_table(setup_project) -> None:
    """UpdateFieldDeploySpec: "Updating a relation field to required should throw an error if a
    newly required field is null (RELATION TABLE)"."""
    before = """
    type A { id: ID! @id  name: String! @unique  b: [B] }
    type B { id: ID! @id  name: String! @unique  a: A @relation(link: TABLE) }
    """
    project = setup_project(before)
    project.data('mutation { createB(data: {name: "B"}) { name } }')
    assert project.deploy(before.replace("a: A @", "a: A! @")) == refused(
        "You are updating the field `a` to be required. But there are already nodes for the "
        "model `B` that would violate that constraint."
    )
    project.data(
        'mutation { updateB(where: {name: "B"}, data: {a: {create: {name: "A"}}}) { id } }'
    )
    project.must_succeed(before.replace("a: A @", "a: A! @"), 3)


A_AND_B = """
type A { id: ID! @id  name: String! @unique }
type B { id: ID! @id  name: String! @unique }
"""


def test_creating_a_required_relation_over_existing_nodes_is_an_error(setup_project) -> None:
    """CreateRelationDeploySpec: "Creating a relation that is required should error if there
    are already nodes" (one error per side whose model has nodes and a required field)."""
    project = setup_project(A_AND_B)
    project.data('mutation { createA(data: {name: "A"}) { name } }')
    project.data('mutation { createB(data: {name: "B"}) { name } }')
    assert project.deploy(A_B_REQUIRED) == refused(
        "You are creating a required relation, but there are already nodes that would violate "
        "that constraint."
    )


def test_creating_a_required_relation_with_a_new_model_over_existing_nodes(setup_project) -> None:
    """CreateRelationDeploySpec: "... together with a new model should error if there are
    already nodes"; without nodes it just works."""
    only_a = "type A { id: ID! @id  name: String! @unique }"
    project = setup_project(only_a)
    project.data('mutation { createA(data: {name: "A"}) { name } }')
    assert project.deploy(A_B_REQUIRED) == refused(
        "You are creating a required relation, but there are already nodes that would violate "
        "that constraint."
    )
    project.data("mutation { deleteManyAs { count } }")
    project.must_succeed(A_B_REQUIRED, 3)


def test_an_optional_relation_is_created_over_existing_nodes(setup_project) -> None:
    """CreateRelationDeploySpec: "Creating a relation that is not required should just work
    even if there are already nodes"."""
    project = setup_project(A_AND_B)
    project.data('mutation { createA(data: {name: "A"}) { name } }')
    project.data('mutation { createB(data: {name: "B"}) { name } }')
    project.must_succeed(
        """
        type A { id: ID! @id  name: String! @unique  b: B @relation(link: INLINE) }
        type B { id: ID! @id  name: String! @unique  a: [A] }
        """,
        3,
    )


def enum_model(values: str, enum_name: str = "AB") -> str:
    return f"""
    type A {{ id: ID! @id  name: String! @unique  enum: {enum_name}
              enums: [{enum_name}] {LIST} }}
    enum {enum_name} {{ {values} }}
    """


def test_removing_an_enum_value_used_in_a_scalar_list_is_an_error(setup_project) -> None:
    """UpdateEnumDeploySpec: "... the removed enum value is in use on a list"."""
    project = setup_project(enum_model("A B"))
    project.data('mutation { createA(data: {name: "A", enum: A, enums: {set: [A, B]}}) { name } }')
    assert project.deploy(enum_model("A")) == refused(
        "You are deleting the value 'B' of the enum 'AB', but that value is in use."
    )


def test_removing_an_enum_value_used_in_a_field_is_an_error(setup_project) -> None:
    """UpdateEnumDeploySpec: "... the removed enum value is in use on a non-list"."""
    project = setup_project(enum_model("A B"))
    project.data('mutation { createA(data: {name: "A", enum: B, enums: {set: [A, A]}}) { name } }')
    payload = project.runtime.management(
        DEPLOY.replace("errors { description }", "errors { type field description }"),
        {"name": project.name, "types": enum_model("A")},
        project.token,
    )["data"]["deploy"]
    assert payload["errors"] == [
        {
            "type": "Global",
            "field": None,
            "description": "You are deleting the value 'B' of the enum 'AB', but that value is "
            "in use.",
        }
    ]


def test_removing_several_used_enum_values_gives_one_error_each(setup_project) -> None:
    """UpdateEnumDeploySpec: "... throw multiple errors if several of the removed cases are in
    use"."""
    project = setup_project(enum_model("A B C D", "ABCD"))
    project.data(
        'mutation { createA(data: {name: "A", enum: D, enums: {set: [C, B, A]}}) { name } }'
    )
    assert project.deploy(enum_model("A", "ABCD")) == refused(
        "You are deleting the value 'B' of the enum 'ABCD', but that value is in use.",
        "You are deleting the value 'C' of the enum 'ABCD', but that value is in use.",
        "You are deleting the value 'D' of the enum 'ABCD', but that value is in use.",
    )


def test_removing_an_unused_enum_value_works(setup_project) -> None:
    """UpdateEnumDeploySpec: "... the remove enum value is not in use"."""
    project = setup_project(enum_model("A B"))
    project.data('mutation { createA(data: {name: "A", enum: A, enums: {set: [A, A]}}) { name } }')
    project.must_succeed(enum_model("A"), 3)


def test_swapping_the_names_of_two_models_asks_for_two_deploys(setup_project) -> None:
    """RenamingWithExistingDataSpec: "Renaming models by switching the names of two existing
    models should error and ask to be split in two parts"."""
    project = setup_project(
        "type A { id: ID! @id  a: String! @unique }  type B { id: ID! @id  b: String @unique }"
    )
    project.data('mutation { createA(data: {a: "A"}) { a } }')
    project.data('mutation { createB(data: {b: "B"}) { b } }')
    swapped = """
    type B @rename(oldName: "A") { id: ID! @id  a: String! @unique }
    type A @rename(oldName: "B") { id: ID! @id  b: String @unique }
    """
    assert project.deploy(swapped) == refused(
        "You renamed type `A` to `B`. But that is the old name of type `A`. Please do this in "
        "two steps.",
        "You renamed type `B` to `A`. But that is the old name of type `B`. Please do this in "
        "two steps.",
    )


TWO_NAMED = """
type A { id: ID! @id  title: String
         b: B @relation(name: "AB1", link: INLINE)  b2: B @relation(name: "AB2", link: INLINE) }
type B { id: ID! @id  title: String  a: A @relation(name: "AB1")  a2: A @relation(name: "AB2") }
"""


def test_two_named_relations_becoming_one_unnamed_is_ambiguous(setup_project) -> None:
    """SeveralRelationsBetweenSameModelsIntegrationSpec: "Going from two named relations between
    the same models to one unnamed one should error due to ambiguity" (code 3018)."""
    project = setup_project(TWO_NAMED)
    answer = project.runtime.management(
        DEPLOY,
        {
            "name": project.name,
            "types": "type A { id: ID! @id  b: B @relation(link: INLINE) }  "
            "type B { id: ID! @id  title: String }",
        },
        project.token,
    )
    (error,) = answer["errors"]
    assert error["code"] == 3018
    assert error["message"] == (
        "There is a relation ambiguity during the migration. The ambiguity is on a relation "
        "between A and B. Please name relations or change the schema in steps."
    )
    assert project.data("{ as { id } }") == {"as": []}  # still served as before


def test_two_named_relations_becoming_one_named_keeps_its_data(setup_project) -> None:
    """SeveralRelationsBetweenSameModelsIntegrationSpec: "... to one named one without a
    backrelation should work"."""
    project = setup_project(TWO_NAMED)
    project.data('mutation { createA(data: {title: "A1", b: {create: {title: "B1"}}}) { id } }')
    project.deploy(
        'type A { id: ID! @id  title: String  b: B @relation(name: "AB1", link: INLINE) }  '
        "type B { id: ID! @id  title: String }",
        force=True,
    )
    assert project.data("{ as { title b { title } } }") == {
        "as": [{"title": "A1", "b": {"title": "B1"}}]
    }


MATCHES = """
type Team { id: ID! @id  name: String! @unique %s }
type Match {
  id: ID! @id
  number: Int @unique
  teamLeft: Team @relation(name: "TeamMatchLeft")
  teamRight: Team @relation(name: "TeamMatchRight")
  winner: Team @relation(name: "TeamMatchWinner" link: INLINE)
}
"""
MATCH = """mutation { createMatch(data: {number: %d, teamLeft: {%s: {name: "Bayern"}},
  teamRight: {%s: {name: "Real"}}, winner: {connect: {name: "Real"}}}) { number } }"""


def test_a_singular_back_relation_over_several_pairs_is_an_error(setup_project) -> None:
    """AddingOptionalBackRelationDuringMigrationSpec: "Adding a missing back-relation of
    non-list type should not work when there are already multiple relation pairs"; a list back
    relation works."""
    project = setup_project(MATCHES % "")
    project.data(MATCH % (1, "create", "create"))
    project.data(MATCH % (2, "connect", "connect"))
    singular = MATCHES % 'wins: Match @relation(name: "TeamMatchWinner")'
    assert project.deploy(singular) == refused(
        "You are adding a singular backrelation field to a type but there are already pairs in "
        "the relation that would violate that constraint."
    )
    project.must_succeed(MATCHES % 'wins: [Match] @relation(name: "TeamMatchWinner")', 3)
    assert project.data("{ teams { name wins { number } } }") == {
        "teams": [
            {"name": "Bayern", "wins": []},
            {"name": "Real", "wins": [{"number": 1}, {"number": 2}]},
        ]
    }


# Warnings -----------------------------------------------------------------------------------


def test_deleting_a_model_with_nodes_warns_and_applies_with_force(setup_project) -> None:
    """DeleteModelDeploySpec (reference 9.1 case 26)."""
    project = setup_project(A_AND_B)
    project.data('mutation { createA(data: {name: "A"}) { name } }')
    only_b = "type B { id: ID! @id  name: String! @unique }"
    assert project.deploy(only_b) == warned(DATA_LOSS_MODEL)
    assert project.data("{ as { name } }") == {"as": [{"name": "A"}]}
    assert project.deploy(only_b, force=True) == warned(DATA_LOSS_MODEL, revision=3)
    assert "Cannot query field 'as'" in project.query("{ as { name } }")["errors"][0]["message"]


def test_deleting_a_field_with_nodes_warns(setup_project) -> None:
    """DeleteFieldDeploySpec."""
    project = setup_project("type A { id: ID! @id  name: String! @unique  dummy: String }")
    project.data('mutation { createA(data: {name: "A", dummy: "test"}) { name } }')
    smaller = "type A { id: ID! @id  name: String! @unique }"
    assert project.deploy(smaller) == warned(DATA_LOSS_FIELD)
    assert project.deploy(smaller, force=True) == warned(DATA_LOSS_FIELD, revision=3)


def test_deleting_an_enum_with_nodes_warns_once_for_its_field(setup_project) -> None:
    """DeleteEnumDeploySpec."""
    project = setup_project(
        "type A { id: ID! @id  name: String! @unique  enum: AB }  enum AB { A B }"
    )
    project.data('mutation { createA(data: {name: "A", enum: A}) { name } }')
    smaller = "type A { id: ID! @id  name: String! @unique }"
    assert project.deploy(smaller) == warned(DATA_LOSS_FIELD)
    assert project.deploy(smaller, force=True) == warned(DATA_LOSS_FIELD, revision=3)


def test_deleting_a_relation_with_pairs_warns(setup_project) -> None:
    """DeleteRelationDeploySpec: "Deleting a relation when there is data should warn"."""
    project = setup_project(A_B_REQUIRED)
    project.data('mutation { createA(data: {name: "A", b: {create: {name: "B"}}}) { name } }')
    assert project.deploy(A_AND_B) == warned(DATA_LOSS_RELATION)


@pytest.mark.parametrize(
    ("before", "after", "create"),
    [
        ("value: Int", f"value: [Int] {LIST}", 'name: "A", value: 1'),
        (f"value: [Int] {LIST}", "value: Int", 'name: "A", value: {set: [1, 2, 3]}'),
        ("value: String", "value: Int", 'name: "A", value: "not a number"'),
        ("value: String", "value: A @relation(link: INLINE)", 'name: "A", value: "1"'),
        ("value: String", "value: E", 'name: "A", value: "A"'),
    ],
    ids=["to-list", "from-list", "string-to-int", "scalar-to-relation", "string-to-enum"],
)
def test_changing_a_fields_type_or_shape_with_nodes_warns(
    setup_project, before: str, after: str, create: str
) -> None:
    """UpdateFieldDeploySpec: each change warns without force and applies with it; the old
    values are gone (Prisma drops the column and creates it again)."""
    model = "type A { id: ID! @id  name: String! @unique  %s }  enum E { A B }"
    project = setup_project(model % before)
    project.data(f"mutation {{ createA(data: {{{create}}}) {{ name }} }}")
    assert project.deploy(model % after) == warned(DATA_LOSS_FIELD)
    assert project.deploy(model % after, force=True) == warned(DATA_LOSS_FIELD, revision=3)
    if "relation" not in after:
        (node,) = project.data("{ as { value } }")["as"]
        assert node["value"] in (None, [])


def test_changing_a_relation_to_a_scalar_with_nodes_warns(setup_project) -> None:
    """ChangingFromRelationToScalarOrBackSpec: "Changing a relation to scalar should work when
    there is already data" (with force)."""
    before = """
    type A { id: ID! @id  a: String! @unique  b: B @relation(link: INLINE) }
    type B { id: ID! @id  b: String! @unique }
    """
    after = """
    type A { id: ID! @id  a: String! @unique  b: String }
    type B { id: ID! @id  b: String! @unique }
    """
    project = setup_project(before)
    project.data('mutation { createA(data: {a: "A", b: {create: {b: "B"}}}) { a } }')
    payload = project.deploy(after)
    assert payload["migration"] is None
    assert {"description": DATA_LOSS_FIELD} in payload["warnings"]
    assert project.deploy(after, force=True)["migration"]["revision"] == 3
    assert project.data("{ as { a b } }") == {"as": [{"a": "A", "b": None}]}


def test_pointing_a_relation_at_another_model_warns_and_drops_its_links(setup_project) -> None:
    """UpdateRelationDeploySpec: "Updating an inline relation to point to a different model
    should warn if there's data"; ChangingModelsOfRelationsSpec: with force the link is gone."""
    project = setup_project(
        """
        type A { id: ID! @id  name: String! @unique  b: B @relation(name: "MyRelation" link: INLINE) }
        type B { id: ID! @id  name: String! @unique  a: A @relation(name: "MyRelation") }
        """
    )
    project.data('mutation { createA(data: {name: "A", b: {create: {name: "B"}}}) { name } }')
    after = """
    type A { id: ID! @id  name: String! @unique  b: C @relation(name: "MyRelation" link: INLINE) }
    type B { id: ID! @id  name: String! @unique }
    type C { id: ID! @id  c: String  a: A @relation(name: "MyRelation") }
    """
    payload = project.deploy(after)
    assert payload["migration"] is None
    assert payload["warnings"][0] == {"description": DATA_LOSS_RELATION}
    project.deploy(after, force=True)
    assert project.data("{ as { name b { c } } }") == {"as": [{"name": "A", "b": None}]}
    assert project.data("{ bs { name } }") == {"bs": [{"name": "B"}]}


def test_moving_the_inline_link_to_the_other_side_warns(setup_project) -> None:
    """UpdateRelationDeploySpec: "Updating a relation to switch the side of the inline link
    should warn if there is data" (and not without data)."""
    project = setup_project(A_B_OPTIONAL)
    switched = """
    type A { id: ID! @id  name: String! @unique  b: B }
    type B { id: ID! @id  name: String! @unique  a: A @relation(link: INLINE) }
    """
    project.data('mutation { createA(data: {name: "A", b: {create: {name: "B"}}}) { name } }')
    assert project.deploy(switched) == warned(DATA_LOSS_RELATION)
    project.data("mutation { deleteManyAs { count } }")
    project.must_succeed(switched, 3)


# Pre-filling --------------------------------------------------------------------------------

PERSON = "type Person { id: ID! @id  age: Int! @unique  %s }  enum Role { USER ADMIN }"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("new: Int!", "`0`", 0),
        ("new: Int! @default(value: 1)", "`1`", 1),
        ("new: String!", "``", ""),
        ("new: Float!", "`0.0`", 0),
        ("new: Boolean!", "`false`", False),
        ("new: DateTime!", "`1970-01-01T00:00:00.000Z`", "1970-01-01T00:00:00.000Z"),
        ("new: UUID!", "`550e8400-e29b-11d4-a716-446655440000`", "550e8400-e29b-11d4-a716-446655440000"),
        ("new: ID!", "`DefaultCUIDMigrationValue`", "DefaultCUIDMigrationValue"),
        ("new: Json!", "`{}`", {}),
        ("new: Role!", "`USER`", "USER"),
    ],
    ids=["int", "int-default", "string", "float", "boolean", "datetime", "uuid", "id", "json", "enum"],
)  # fmt: skip
def test_a_new_required_field_prefills_existing_nodes(
    setup_project, field: str, value: str, expected: Any
) -> None:
    """PrefillingFieldsWithDefaultOrMigrationValueSpec: "Adding a required field without default
    value should set the internal migration value" / "with default value should set the default
    value" (both warn: the default is the value used)."""
    project = setup_project(PERSON % "")
    project.data("mutation { createPerson(data: {age: 1}) { age } }")
    after = PERSON % field
    assert project.deploy(after) == warned(
        "You are creating a required field but there are already nodes present that would "
        f"violate that constraint.The fields will be pre-filled with the value {value}."
    )
    project.deploy(after, force=True)
    (person,) = project.data("{ persons { age new } }")["persons"]
    assert person["new"] == expected


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("test: Int!", "0", [3, 0]), ("test: Int! @default(value: 1)", "1", [3, 1])],
    ids=["migration-value", "default"],
)
def test_making_a_field_required_prefills_the_nulls(
    setup_project, field: str, value: str, expected: list[int]
) -> None:
    """PrefillingFieldsWithDefaultOrMigrationValueSpec: "Making a field required without default
    value should set the internal migration value for null values" / "... with default value"."""
    project = setup_project(PERSON % "test: Int")
    project.data("mutation { createPerson(data: {age: 1, test: 3}) { age } }")
    project.data("mutation { createPerson(data: {age: 2}) { age } }")
    assert project.deploy(PERSON % field) == warned(
        f"You are changing the type of a required field. The fields will be pre-filled with the "
        f"value: `{value}`."
    )
    project.deploy(PERSON % field, force=True)
    persons = project.data("{ persons(orderBy: age_ASC) { test } }")["persons"]
    assert [p["test"] for p in persons] == expected


def test_making_a_field_required_without_nulls_needs_no_force(setup_project) -> None:
    """UpdateFieldDeploySpec: "Updating a scalar field to required should not throw an error if
    all required fields already have data"."""
    project = setup_project(PERSON % "test: Int")
    project.data("mutation { createPerson(data: {age: 1, test: 3}) { age } }")
    project.must_succeed(PERSON % "test: Int!", 3)


@pytest.mark.parametrize(
    ("before", "after", "warnings", "expected"),
    [
        ("test: Int!", "test: String!", [DATA_LOSS_FIELD, "``"], ["", ""]),
        (
            "test: Int!",
            'test: String! @default(value: "default")',
            [DATA_LOSS_FIELD, "`default`"],
            ["default", "default"],
        ),
        ("test: Int", "test: String", [DATA_LOSS_FIELD], [None, None]),
        ("test: Int", 'test: String @default(value: "default")', [DATA_LOSS_FIELD], [None, None]),
        ("test: Int", "test: String!", [DATA_LOSS_FIELD, "``", "``"], ["", ""]),
    ],
    ids=["required", "required-default", "optional", "optional-default", "optional-to-required"],
)
def test_changing_a_fields_type_nulls_or_prefills_every_value(
    setup_project, before: str, after: str, warnings: list[str], expected: list[Any]
) -> None:
    """PrefillingFieldsWithDefaultOrMigrationValueSpec, the "Changing the typeIdentifier ..."
    cases: every value goes; required fields get the default or migration value. Making an
    optional field required in the same change warns twice about the value, as Prisma does (the
    type change and the nulls are checked separately)."""
    project = setup_project(PERSON % before)
    project.data("mutation { createPerson(data: {age: 1, test: 3}) { age } }")
    project.data(
        "mutation { createPerson(data: {age: 2%s}) { age } }"
        % (", test: 4" if "!" in before else "")
    )
    descriptions = [
        w
        if w == DATA_LOSS_FIELD
        else "You are changing the type of a required field. The fields will be pre-filled "
        f"with the value: {w}."
        for w in warnings
    ]
    assert project.deploy(PERSON % after, force=True) == warned(*descriptions, revision=3)
    persons = project.data("{ persons(orderBy: age_ASC) { test } }")["persons"]
    assert [p["test"] for p in persons] == expected


def test_making_a_unique_field_required_over_nulls_is_an_error(setup_project) -> None:
    """PrefillingFieldsWithDefaultOrMigrationValueSpec: "Making a unique field required with
    default value should error" (a shared pre-fill value would break the unique constraint)."""
    project = setup_project(PERSON % "test: Int @unique")
    project.data("mutation { createPerson(data: {age: 1, test: 3}) { age } }")
    project.data("mutation { createPerson(data: {age: 2}) { age } }")
    assert project.deploy(PERSON % "test: Int! @unique @default(value: 10)") == refused(
        "You are updating the field `test` to be required and unique. But there are already "
        "nodes for the model `Person` that would violate that constraint."
    )


# Renames ------------------------------------------------------------------------------------


def test_renaming_a_model_and_a_field_keeps_the_rows(setup_project) -> None:
    """RenamingWithExistingDataSpec: "Renaming a model and field should work", and a model with
    a scalar list; UpdateModelDeploySpec: no warning even with nodes."""
    project = setup_project(f"type A {{ id: ID! @id  a: String! @unique  ints: [Int] {LIST} }}")
    project.data('mutation { createA(data: {a: "A", ints: {set: [1, 2]}}) { a } }')
    project.must_succeed(
        f'type B @rename(oldName: "A") {{ id: ID! @id  b: String! @unique @rename(oldName: "a") '
        f"ints: [Int] {LIST} }}",
        3,
    )
    assert project.data("{ bs { b ints } }") == {"bs": [{"b": "A", "ints": [1, 2]}]}


def test_renaming_a_model_of_a_relation_keeps_the_links(setup_project) -> None:
    """ChangingModelsOfRelationsSpec: "Renaming a model with @rename but keeping its relation
    should work"."""
    project = setup_project(
        """
        type A { id: ID! @id  a: String! @unique  b: B @relation(name: "Relation" link: INLINE) }
        type B { id: ID! @id  b: String! @unique  a: A @relation(name: "Relation") }
        """
    )
    project.data('mutation { createA(data: {a: "A", b: {create: {b: "B"}}}) { a } }')
    project.must_succeed(
        """
        type A { id: ID! @id  a: String! @unique  b: C @relation(name: "Relation" link: INLINE) }
        type C @rename(oldName: "B") { id: ID! @id  b: String! @unique  a: A @relation(name: "Relation") }
        """,
        3,
    )
    assert project.data("{ as { a b { b } } }") == {"as": [{"a": "A", "b": {"b": "B"}}]}
    assert project.data("{ cs { b a { a } } }") == {"cs": [{"b": "B", "a": {"a": "A"}}]}


def test_renaming_a_relation_keeps_its_links(setup_project) -> None:
    """SeveralRelationsBetweenSameModelsIntegrationSpec: "... renaming relations that are
    already named" (`oldName`) and "... that don't have a name yet"."""
    project = setup_project(
        """
        type A { id: ID! @id  title: String  b1: B @relation(link: INLINE) }
        type B { id: ID! @id  title: String  a1: A }
        """
    )
    project.data('mutation { createA(data: {title: "A1", b1: {create: {title: "B1"}}}) { id } }')
    project.must_succeed(
        """
        type A { id: ID! @id  title: String  b1: B @relation(name: "NewName", link: INLINE) }
        type B { id: ID! @id  title: String  a1: A @relation(name: "NewName") }
        """,
        3,
    )
    project.must_succeed(
        """
        type A { id: ID! @id  title: String
                 b1: B @relation(oldName: "NewName", name: "Other", link: INLINE) }
        type B { id: ID! @id  title: String  a1: A @relation(oldName: "NewName", name: "Other") }
        """,
        4,
    )
    assert project.data("{ as { title b1 { title } } }") == {
        "as": [{"title": "A1", "b1": {"title": "B1"}}]
    }


def test_renames_keep_the_rows_of_a_link_table(setup_project) -> None:
    """A link table follows a renamed relation (`oldName`) and a model rename that swaps its A
    and B columns (`Post`, renamed `Zine`, now sorts after `Tag`)."""
    project = setup_project(
        """
        type Post { id: ID! @id  title: String! @unique  tags: [Tag] @relation(name: "Tagged") }
        type Tag { id: ID! @id  name: String! @unique  posts: [Post] @relation(name: "Tagged") }
        """
    )
    project.data(
        'mutation { createPost(data: {title: "p", tags: {create: [{name: "t"}]}}) { id } }'
    )
    project.must_succeed(
        """
        type Zine @rename(oldName: "Post") { id: ID! @id  title: String! @unique
          tags: [Tag] @relation(name: "Labels", oldName: "Tagged") }
        type Tag { id: ID! @id  name: String! @unique
          posts: [Zine] @relation(name: "Labels", oldName: "Tagged") }
        """,
        3,
    )
    assert project.data("{ zines { title tags { name } } }") == {
        "zines": [{"title": "p", "tags": [{"name": "t"}]}]
    }
    assert project.data("{ tags { name posts { title } } }") == {
        "tags": [{"name": "t", "posts": [{"title": "p"}]}]
    }


def test_sides_naming_different_relations_still_get_storage(setup_project) -> None:
    """RenamingWithExistingDataSpec: "Renaming a relation with oldName on both sides" renames
    `First` to `Second` on one side only; the link keeps its data, and the relation the other
    side now names (`First`, new) gets its own column rather than being taken for the old one."""
    project = setup_project(
        """
        type A { id: ID! @id  a: String! @unique  b: B @relation(name: "First", link: INLINE) }
        type B { id: ID! @id  b: String @unique  a: A @relation(name: "First") }
        """
    )
    project.data('mutation { createA(data: {a: "A", b: {create: {b: "B1"}}}) { a } }')
    project.must_succeed(
        """
        type A { id: ID! @id  a: String! @unique
                 b: B @relation(name: "Second", oldName: "First", link: INLINE) }
        type B { id: ID! @id  b: String @unique  a: A @relation(name: "First", oldName: "First") }
        """,
        3,
    )
    assert project.data("{ as { b { b } } }") == {"as": [{"b": {"b": "B1"}}]}
    assert project.data("{ bs { b a { a } } }") == {"bs": [{"b": "B1", "a": None}]}


def test_renaming_a_model_keeps_unnamed_relations_of_both_kinds(setup_project) -> None:
    """RenamingWithExistingDataSpec, with relations: the generated names change (`PostToTag`
    becomes `ArticleToTag`), the link table and the inline column held by the renamed model
    keep their rows."""
    project = setup_project(
        """
        type Post { id: ID! @id  title: String! @unique  tags: [Tag]  author: User }
        type Tag { id: ID! @id  name: String! @unique  posts: [Post] }
        type User { id: ID! @id  name: String! @unique  posts: [Post] }
        """
    )
    project.data(
        'mutation { createPost(data: {title: "p", tags: {create: [{name: "t"}]}, '
        'author: {create: {name: "u"}}}) { id } }'
    )
    project.must_succeed(
        """
        type Article @rename(oldName: "Post") { id: ID! @id  title: String! @unique
          tags: [Tag]  author: User }
        type Tag { id: ID! @id  name: String! @unique  posts: [Article] }
        type User { id: ID! @id  name: String! @unique  posts: [Article] }
        """,
        3,
    )
    assert project.data("{ articles { title tags { name } author { name } } }") == {
        "articles": [{"title": "p", "tags": [{"name": "t"}], "author": {"name": "u"}}]
    }
    assert project.data("{ users { posts { title } } }") == {"users": [{"posts": [{"title": "p"}]}]}


def test_renaming_an_enum_keeps_its_values_and_still_checks_removed_ones(setup_project) -> None:
    """UpdateEnumDeploySpec: "Updating an Enum to rename it should succeed even if there is
    data"; a value removed in the same deploy is still checked (named by its old enum)."""
    project = setup_project(enum_model("A B C D", "ABCD"))
    project.data(
        'mutation { createA(data: {name: "A", enum: D, enums: {set: [C, B, A]}}) { name } }'
    )
    renamed = f"""
    type A {{ id: ID! @id  name: String! @unique  enum: AB  enums: [AB] {LIST} }}
    enum AB @rename(oldName: "ABCD") {{ %s }}
    """
    assert project.deploy(renamed % "A B C") == refused(
        "You are deleting the value 'D' of the enum 'ABCD', but that value is in use."
    )
    project.must_succeed(renamed % "A B C D", 3)
    assert project.data("{ as { enum enums } }") == {
        "as": [{"enum": "D", "enums": ["C", "B", "A"]}]
    }


def test_declaring_a_relation_table_renames_the_link_table_and_keeps_its_rows(
    setup_project,
) -> None:
    """`@relationTable` on an existing relation: its `_Name` table with columns A/B becomes the
    declared table and columns; the links stay."""
    project = setup_project(
        """
        type Post { id: ID! @id  title: String! @unique  tags: [Tag] @relation(name: "Tagged") }
        type Tag { id: ID! @id  name: String! @unique  posts: [Post] @relation(name: "Tagged") }
        """
    )
    project.data(
        'mutation { createPost(data: {title: "p", tags: {create: [{name: "t"}]}}) { id } }'
    )
    project.must_succeed(
        """
        type Post { id: ID! @id  title: String! @unique  tags: [Tag] @relation(name: "Tagged") }
        type Tag { id: ID! @id  name: String! @unique  posts: [Post] @relation(name: "Tagged") }
        type Tagged @relationTable @db(name: "post_tags") {
          tag: Tag! @db(name: "tag_id")
          post: Post! @db(name: "post_id")
        }
        """,
        3,
    )
    assert project.data("{ posts { title tags { name } } }") == {
        "posts": [{"title": "p", "tags": [{"name": "t"}]}]
    }
    project.data(
        'mutation { updateTag(where: {name: "t"}, data: {posts: {create: [{title: "q"}]}}) { id } }'
    )
    assert project.data("{ tags { name posts(orderBy: title_ASC) { title } } }") == {
        "tags": [{"name": "t", "posts": [{"title": "p"}, {"title": "q"}]}]
    }
