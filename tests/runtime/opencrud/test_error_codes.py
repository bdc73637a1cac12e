"""Which code a bad write gets when several could apply, as Prisma decides it (ported from
`InsertingNullInRequiredFieldsSpec`, `UpsertMutationSpec`, `NestedCreateMutationInsideCreateSpec`).

- 3036: a required field with a default explicitly set to null on create (`CoolArgs`), and a
  value PostgreSQL refuses for its column.
- 3020: a required field set to null on update (`NodeActions.updateNodesByIds`).
- 3032: a create (root or nested) that neither creates nor connects a required to-one
  relation, raised before anything is written (`DatabaseMutactions.RelationIsRequired`).
- A null literal for a required field of a create input is a validation error, with Sangria's
  text.
"""

from __future__ import annotations

from tests.runtime.conftest import Database
from tests.runtime.opencrud.prisma_shapes import deployed, must_fail

SCALARS = """
type A {
  id: ID! @id
  b: String! @unique
  key: String!
  opt: String
}

type S {
  id: ID! @id
  optDateTime: DateTime
  optInt: Int
}

type WithDefaultValue {
  id: ID! @id
  reqString: String! @default(value: "defaultValue")
  title: String!
}
"""


def test_required_scalars_set_to_null(database: Database) -> None:
    with deployed(database, SCALARS) as s:
        s.data('mutation { createA(data: {b: "abc", key: "abc"}) { id } }')
        error = must_fail(
            s, 'mutation { updateA(where: {b: "abc"}, data: {key: null}) { id } }', 3020
        )
        assert error["message"] == (
            "You are trying to set a required field to null. If you are using GraphQL "
            "arguments, make sure that you specify a value for all arguments. Fieldname if "
            "known: key"
        )
        assert s.data('mutation { updateA(where: {b: "abc"}, data: {opt: null}) { opt } }') == {
            "updateA": {"opt": None}
        }
        must_fail(
            s,
            'mutation { createA(data: {b: "abd", key: null}) { id } }',
            0,
            """Argument 'data' expected type 'ACreateInput!' but got: {b: "abd", key: null}. """
            "Reason: 'key' String value expected",
        )
        must_fail(
            s,
            'mutation { upsertWithDefaultValue(where: {id: "NonExistantID"}, '
            'create: {reqString: null, title: "new title"}, update: {title: "updated title"}) '
            "{ title reqString } }",
            3036,
            "The input value null was not valid for field reqString of type WithDefaultValue.",
        )
        data = s.data(
            'mutation { upsertWithDefaultValue(where: {id: "5beea4aa6183dd734b2dbd9b"}, '
            'create: {title: "new title"}, update: {title: "updated title"}) '
            "{ title reqString } }"
        )
        assert data == {
            "upsertWithDefaultValue": {"title": "new title", "reqString": "defaultValue"}
        }
        assert s.data("{ as { b key } }") == {"as": [{"b": "abc", "key": "abc"}]}


def test_bad_scalar_literals_have_sangria_s_reasons(database: Database) -> None:
    with deployed(database, SCALARS) as s:
        for value, reason in (
            ('optDateTime: "yesterday"', "'optDateTime' Date value expected"),
            ('optInt: "1"', "'optInt' Int value expected"),
            ("optInt: 2147483648", "'optInt' Int value expected"),
        ):
            must_fail(s, f"mutation {{ createS(data: {{{value}}}) {{ id }} }}", 0, reason)
        assert s.data('mutation { createS(data: {optDateTime: "2016"}) { optDateTime } }') == {
            "createS": {"optDateTime": "2016-01-01T00:00:00.000Z"}
        }


def test_a_create_without_a_required_relation_is_3032(database: Database) -> None:
    datamodel = """
type Comment {
  id: ID! @id
  reqOnComment: String!
  todo: Todo! @relation(link: INLINE)
}

type Todo {
  id: ID! @id
  reqOnTodo: String!
  comment: Comment!
  extra: Extra!
}

type Extra {
  id: ID! @id
  e: String! @unique
}
"""
    message = (
        "The field 'todo' on type 'Comment' is required. Performing this mutation would "
        "violate that constraint"
    )
    with deployed(database, datamodel) as s:
        s.data('mutation { createExtra(data: {e: "e"}) { id } }')
        data = s.data(
            'mutation { createComment(data: {reqOnComment: "c1", todo: {create: '
            '{reqOnTodo: "t1", extra: {connect: {e: "e"}}}}}) { todo { reqOnTodo } } }'
        )
        assert data == {"createComment": {"todo": {"reqOnTodo": "t1"}}}
        must_fail(
            s,
            'mutation { createComment(data: {reqOnComment: "c2", todo: {}}) { id } }',
            3032,
            message,
        )
        # A nested create is checked too, except for the field back to its parent.
        must_fail(
            s,
            'mutation { createComment(data: {reqOnComment: "c3", todo: {create: '
            '{reqOnTodo: "t3", extra: {}}}}) { id } }',
            3032,
            "The field 'extra' on type 'Todo' is required.",
        )
        must_fail(
            s,
            'mutation { upsertComment(where: {id: "5beea4aa6183dd734b2dbd9b"}, '
            'create: {reqOnComment: "c4", todo: {}}, update: {reqOnComment: "x"}) { id } }',
            3032,
            message,
        )
        assert s.data("{ comments { reqOnComment } todoes { reqOnTodo } }") == {
            "comments": [{"reqOnComment": "c1"}],
            "todoes": [{"reqOnTodo": "t1"}],
        }


def test_a_value_postgresql_refuses_is_3036(database: Database) -> None:
    datamodel = """
type Item {
  id: UUID! @id
  name: String! @unique
}
"""
    with deployed(database, datamodel) as s:
        error = must_fail(
            s,
            'mutation ($id: UUID) { updateItem(where: {id: $id}, data: {name: "x"}) { id } }',
            3036,
            variables={"id": "not-a-uuid"},
        )
        assert error["message"].startswith("The input value")
