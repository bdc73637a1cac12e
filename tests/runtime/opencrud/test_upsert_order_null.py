"""Upserts by id and by unique fields (`UpsertMutationSpec`), ties in ordering and pagination
(`OrderBySpec`, `PaginationTiebreakerSpec`) and `null` filters on every scalar type."""

from __future__ import annotations

import pytest

from tests.runtime.opencrud.conftest import Service

DATAMODEL = """
type Todo {
  id: ID! @id
  title: String!
  alias: String! @unique
  anotherIDField: ID @unique
}

type NeedsTiebreaker {
  id: ID! @id
  name: String!
  order: Int!
}

type User {
  id: ID! @id
  numFollowers: Int!
  pos: Int!
}

type Scalars {
  id: ID! @id
  tag: String! @unique
  optString: String
  optInt: Int
  optFloat: Float
  optBoolean: Boolean
  optEnum: Kind
  optDateTime: DateTime
  optId: ID
  optUuid: UUID
  optJson: Json
  optUnique: String @unique
}

enum Kind {
  A
  B
}
"""


def todo_count(service: Service) -> int:
    return service.data("{ todoesConnection { aggregate { count } } }")["todoesConnection"][
        "aggregate"
    ]["count"]


# Upsert ---------------------------------------------------------------------------------------


def test_upsert_by_id_and_by_any_unique_field(service: Service) -> None:
    service.sql(f'DELETE FROM "{service.schema_name}"."Todo"')  # noqa: S608
    data = service.data(
        'mutation { upsertTodo(where: {id: "5beea4aa6183dd734b2dbd9b"}, '
        'create: {title: "new title", alias: "todo1"}, update: {title: "updated title"}) '
        "{ id title } }"
    )["upsertTodo"]
    assert data["title"] == "new title" and data["id"] != "5beea4aa6183dd734b2dbd9b"
    assert todo_count(service) == 1
    data = service.data(
        "mutation ($id: ID) { upsertTodo(where: {id: $id}, "
        'create: {title: "irrelevant", alias: "irrelevant"}, update: {title: "updated title"}) '
        "{ title } }",
        {"id": data["id"]},
    )
    assert data == {"upsertTodo": {"title": "updated title"}} and todo_count(service) == 1
    data = service.data(
        'mutation { upsertTodo(where: {alias: "todo1"}, '
        'create: {title: "irrelevant", alias: "irrelevant"}, update: {title: "by alias"}) '
        "{ title } }"
    )
    assert data == {"upsertTodo": {"title": "by alias"}} and todo_count(service) == 1
    # By an optional unique field that no node has: created.
    service.data(
        'mutation { upsertTodo(where: {anotherIDField: "x1"}, '
        'create: {title: "t2", alias: "todo2", anotherIDField: "x1"}, update: {title: "no"}) '
        "{ title } }"
    )
    assert todo_count(service) == 2
    data = service.data(
        'mutation { upsertTodo(where: {anotherIDField: "x1"}, '
        'create: {title: "no", alias: "no"}, update: {title: "t2 again"}) { title } }'
    )
    assert data == {"upsertTodo": {"title": "t2 again"}} and todo_count(service) == 2


def test_an_upsert_whose_update_changes_the_unique_field_of_its_where(service: Service) -> None:
    todo = service.data('mutation { createTodo(data: {title: "title", alias: "chg1"}) { id } }')
    before = todo_count(service)
    data = service.data(
        'mutation { upsertTodo(where: {alias: "chg1"}, '
        'create: {title: "title of new node", alias: "alias-of-new-node"}, '
        'update: {title: "updated title", alias: "chg1-new"}) { id title alias } }'
    )
    assert data == {
        "upsertTodo": {
            "id": todo["createTodo"]["id"],
            "title": "updated title",
            "alias": "chg1-new",
        }
    }
    assert todo_count(service) == before
    # An update that changes nothing is still only an update.
    data = service.data(
        'mutation { upsertTodo(where: {alias: "chg1-new"}, '
        'create: {title: "no", alias: "no2"}, update: {}) { title } }'
    )
    assert data == {"upsertTodo": {"title": "updated title"}} and todo_count(service) == before


def test_an_upsert_whose_update_takes_another_node_s_unique_value_fails(
    service: Service,
) -> None:
    service.data('mutation { createTodo(data: {title: "a", alias: "taken1"}) { id } }')
    service.data('mutation { createTodo(data: {title: "b", alias: "taken2"}) { id } }')
    error = service.error(
        'mutation { upsertTodo(where: {alias: "taken1"}, '
        'create: {title: "no", alias: "no3"}, update: {alias: "taken2"}) { title } }'
    )
    assert error["code"] == 3010
    assert error["message"] == (
        "A unique constraint would be violated on Todo. Details: Field name = alias"
    )


def test_an_id_that_is_too_long_in_the_create_branch(service: Service) -> None:
    error = service.error(
        'mutation { upsertTodo(where: {alias: "nope-long"}, create: {title: "t", '
        'alias: "nope-long", anotherIDField: "morethantwentyfivecharacterslong"}, '
        'update: {title: "no"}) { id } }'
    )
    assert error["code"] == 3007
    assert error["message"] == "Value for field anotherIDField is too long."


# Ordering -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiebreakers(service: Service) -> Service:
    service.data(
        "mutation { "
        + " ".join(
            f'n{i}: createNeedsTiebreaker(data: {{name: "SameSame", order: {i}}}) {{ id }}'
            for i in range(1, 8)
        )
        + " }"
    )
    service.data(
        "mutation { "
        + " ".join(
            f"u{pos}: createUser(data: {{numFollowers: {n}, pos: {pos}}}) {{ id }}"
            for n, pos in ((9, 1), (9, 2), (9, 3), (10, 4), (10, 5), (10, 6))
        )
        + " }"
    )
    return service


@pytest.mark.parametrize(
    ("arguments", "orders"),
    [
        ("", [1, 2, 3, 4, 5, 6, 7]),
        ("(orderBy: id_ASC)", [1, 2, 3, 4, 5, 6, 7]),
        ("(last: 3)", [5, 6, 7]),
        ("(orderBy: name_ASC)", [1, 2, 3, 4, 5, 6, 7]),
        ("(orderBy: name_ASC, last: 3)", [5, 6, 7]),
        ("(orderBy: name_DESC)", [1, 2, 3, 4, 5, 6, 7]),
        ("(orderBy: name_DESC, last: 3)", [5, 6, 7]),
        ("(orderBy: name_DESC, first: 2, skip: 1)", [2, 3]),
        ("(orderBy: name_DESC, last: 2, skip: 1)", [5, 6]),
    ],
)
def test_ties_are_broken_by_id_ascending(
    tiebreakers: Service, arguments: str, orders: list
) -> None:
    data = tiebreakers.data(f"{{ needsTiebreakers{arguments} {{ order }} }}")
    assert [n["order"] for n in data["needsTiebreakers"]] == orders


def user_id(service: Service, pos: int) -> str:
    return service.data(f"{{ users(where: {{pos: {pos}}}) {{ id }} }}")["users"][0]["id"]


@pytest.mark.parametrize(
    ("order", "cursor", "arguments", "positions"),
    [
        ("", ("after", 3), "", [4, 5, 6]),
        ("numFollowers_DESC", ("after", 4), "", [5, 6, 1, 2, 3]),
        ("numFollowers_ASC", ("after", 2), "", [3, 4, 5, 6]),
        ("", ("before", 4), "", [1, 2, 3]),
        ("numFollowers_DESC", ("before", 1), "", [4, 5, 6]),
        ("numFollowers_ASC", ("before", 3), "", [1, 2]),
        # Combined with first and last.
        ("numFollowers_DESC", ("after", 5), "first: 2", [6, 1]),
        ("numFollowers_DESC", ("after", 5), "last: 2", [2, 3]),
        ("numFollowers_DESC", ("before", 2), "first: 2", [4, 5]),
        ("numFollowers_DESC", ("before", 2), "last: 2", [6, 1]),
        ("numFollowers_ASC", ("after", 1), "first: 3", [2, 3, 4]),
        ("numFollowers_ASC", ("before", 6), "last: 3", [3, 4, 5]),
    ],
)
def test_after_and_before_with_ties(
    tiebreakers: Service, order: str, cursor: tuple[str, int], arguments: str, positions: list
) -> None:
    service = tiebreakers
    args = [f'{cursor[0]}: "{user_id(service, cursor[1])}"']
    if order:
        args.append(f"orderBy: {order}")
    if arguments:
        args.append(arguments)
    data = service.data(f"{{ users({', '.join(args)}) {{ pos }} }}")
    assert [u["pos"] for u in data["users"]] == positions
    connection = service.data(
        f"{{ usersConnection({', '.join(args)}) {{ edges {{ node {{ pos }} }} }} }}"
    )
    assert [e["node"]["pos"] for e in connection["usersConnection"]["edges"]] == positions


# Filtering on null ----------------------------------------------------------------------------

FIELDS = {
    "optString": '"s"',
    "optInt": "1",
    "optFloat": "1.5",
    "optBoolean": "false",
    "optEnum": "A",
    "optDateTime": '"2020-01-01T00:00:00.000Z"',
    "optId": '"some-id"',
    "optUuid": '"a5b6c6e0-42a1-4c52-9e3e-1b1b0b1b0b1b"',
    "optUnique": '"u1"',
}


@pytest.fixture(scope="module")
def scalars(service: Service) -> Service:
    values = ", ".join(f"{k}: {v}" for k, v in FIELDS.items())
    service.data(
        f'mutation {{ createScalars(data: {{tag: "full", {values}, optJson: "[1]"}}) {{ id }} }}'
    )
    service.data('mutation { createScalars(data: {tag: "empty"}) { id } }')
    return service


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_filtering_on_null(scalars: Service, field: str) -> None:
    def tags(where: str) -> list[str]:
        query = "{ scalarses(where: {" + where + "}, orderBy: tag_ASC) { tag } }"
        return [n["tag"] for n in scalars.data(query)["scalarses"]]

    assert tags(f"{field}: null") == ["empty"]
    assert tags(f"{field}_not: null") == ["full"]
    if field != "optBoolean":  # Boolean has only equals and _not
        assert tags(f"{field}_in: null") == ["empty", "full"]
    assert tags(f"{field}: {FIELDS[field]}") == ["full"]
    # `_not` is SQL `<>` in Prisma's FilterConditionBuilder: a null does not match it.
    assert tags(f"{field}_not: {FIELDS[field]}") == []
    assert tags(f"OR: [{{{field}: null}}, {{{field}: {FIELDS[field]}}}]") == ["empty", "full"]
    assert tags(f"NOT: [{{{field}: null}}]") == ["full"]
