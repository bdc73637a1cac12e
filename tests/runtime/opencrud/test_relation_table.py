"""`@relationTable`: a relation stored in a link table with its own table and column names
(`RelationTableDirectiveSpec`, `SchemaInferrer.manifestationForField`)."""

from __future__ import annotations

import pytest

from runtime.datamodel import SchemaError, parse_datamodel
from tests.runtime.conftest import Database
from tests.runtime.opencrud.prisma_shapes import deployed


def errors_of(datamodel: str) -> list[SchemaError]:
    result = parse_datamodel(datamodel)
    assert not result.ok
    return result.errors


def test_the_link_table_names_the_relation_s_table_and_columns() -> None:
    result = parse_datamodel(
        """
type Model {
  id: ID! @id
  model: Model @relation(name: "ModelToModelRelation")
}

type ModelToModelRelation @relationTable {
  A: Model!
  B: Model!
}

type Team {
  id: ID! @id
  members: [Member] @relation(name: "Membership")
}

type Member {
  id: ID! @id
  team: Team @relation(name: "Membership")
}

type Membership @relationTable @db(name: "team_members") {
  member: Member! @db(name: "member_id")
  team: Team! @db(name: "team_id")
}
"""
    )
    assert result.ok, result.errors
    assert result.schema is not None
    assert [m.name for m in result.schema.models] == ["Model", "Team", "Member"]
    membership = result.schema.relation("Membership")
    assert membership is not None
    # One to many would be inline; the declared link table makes it a table.
    assert membership.manifestation() == {
        "type": "LinkTable",
        "table": "team_members",
        "modelAColumn": "member_id",  # model A is Member (sorts first)
        "modelBColumn": "team_id",
        "idColumn": None,
    }
    self_relation = result.schema.relation("ModelToModelRelation")
    assert self_relation is not None and self_relation.table == "ModelToModelRelation"
    assert (self_relation.column_a, self_relation.column_b) == ("A", "B")


@pytest.mark.parametrize(
    ("datamodel", "error"),
    [
        (
            """
type Model { id: ID! @id  model: Model }
type MyLinkTable @relationTable { A: Model!  B: Model! }
""",
            SchemaError(
                "MyLinkTable",
                None,
                "The link table `MyLinkTable` is not referenced in any relation field.",
            ),
        ),
        (
            """
type Model { id: ID! @id  other: Other @relation(name: "MyRelation", link: INLINE) }
type Other { id: ID! @id  model: Model @relation(name: "MyRelation") }
type MyRelation @relationTable { A: Model!  B: Model! }
""",
            SchemaError(
                "MyRelation",
                None,
                "The link table `MyRelation` is not referencing the right types.",
            ),
        ),
        (
            """
type Model { id: ID! @id  model: Model @relation(name: "ModelToModelRelation") }
type ModelToModelRelation @relationTable { A: Model!  B: Model!  C: String }
""",
            SchemaError(
                "ModelToModelRelation",
                "C",
                "A link table must not specify any additional scalar fields.",
            ),
        ),
        (
            """
type Model { id: ID! @id  model: Model @relation(name: "ModelToModelRelation") }
type ModelToModelRelation @relationTable { id: Int! @id  A: Model!  B: Model! }
""",
            SchemaError(
                "ModelToModelRelation", "id", "The id field of a link table must be of type `ID!`."
            ),
        ),
        (
            """
type Model { id: ID! @id  model: Model @relation(name: "ModelToModelRelation") }
type ModelToModelRelation @relationTable { A: Model! }
""",
            SchemaError(
                "ModelToModelRelation",
                None,
                "A link table must specify exactly two relation fields.",
            ),
        ),
    ],
)
def test_link_tables_are_checked_as_prisma_checks_them(datamodel: str, error: SchemaError) -> None:
    assert error in errors_of(datamodel)


def test_a_relation_through_a_named_link_table_end_to_end(database: Database) -> None:
    datamodel = """
type Team {
  id: ID! @id
  name: String! @unique
  members: [Member] @relation(name: "Membership")
}

type Member {
  id: ID! @id
  name: String! @unique
  teams: [Team] @relation(name: "Membership")
}

type Membership @relationTable @db(name: "team_members") {
  team: Team! @db(name: "team_id")
  member: Member! @db(name: "member_id")
}
"""
    with deployed(database, datamodel) as s:
        s.data(
            'mutation { createTeam(data: {name: "red", members: {create: '
            '[{name: "ann"}, {name: "bob"}]}}) { name } }'
        )
        s.data(
            'mutation { createMember(data: {name: "cid", teams: {connect: [{name: "red"}]}}) '
            "{ name } }"
        )
        data = s.data(
            'mutation { updateTeam(where: {name: "red"}, '
            'data: {members: {disconnect: [{name: "bob"}]}}) '
            "{ members(orderBy: name_ASC) { name teams { name } } } }"
        )
        assert data == {
            "updateTeam": {
                "members": [
                    {"name": "ann", "teams": [{"name": "red"}]},
                    {"name": "cid", "teams": [{"name": "red"}]},
                ]
            }
        }
        assert s.data('{ members(where: {teams_none: {name: "red"}}) { name } }') == {
            "members": [{"name": "bob"}]
        }
        rows = s.sql(
            f'SELECT t.name, m.name FROM "{s.schema_name}".team_members l '  # noqa: S608
            f'JOIN "{s.schema_name}"."Team" t ON t.id = l.team_id '
            f'JOIN "{s.schema_name}"."Member" m ON m.id = l.member_id ORDER BY m.name'
        )
        assert rows == [("red", "ann"), ("red", "cid")]
        s.data('mutation { deleteMember(where: {name: "ann"}) { name } }')
        assert s.data('{ team(where: {name: "red"}) { members { name } } }') == {
            "team": {"members": [{"name": "cid"}]}
        }
