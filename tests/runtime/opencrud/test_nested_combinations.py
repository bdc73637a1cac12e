"""Several nested operations in one input (`CombiningDifferentNestedMutationsSpec`), nested
operations in the `update` branch of an upsert (`Nested*MutationInsideUpsertSpec`), and self
relations of every cardinality.

Prisma runs the nested operations of an input by kind, in the order of `allNestedMutactions`:
create, update, upsert, delete, connect, set, disconnect, updateMany, deleteMany.
"""

from __future__ import annotations

import pytest

from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service
from tests.runtime.opencrud.prisma_shapes import (
    REQUIRED_3042,
    deployed,
    must_fail,
    on_every_variant,
)

CHILDREN = "{ childrenOpt { c } }"


def with_c1_c2(s: Service) -> None:
    data = s.data(
        f'mutation {{ createParent(data: {{p: "p1", childrenOpt: {{create: [{{c: "c1"}}, '
        f'{{c: "c2"}}]}}}}) {CHILDREN} }}'
    )
    assert data == {"createParent": {"childrenOpt": [{"c": "c1"}, {"c": "c2"}]}}


@pytest.mark.parametrize(
    ("operations", "children"),
    [
        ('update: [{where: {c: "c3"} data: {c: "cUpdated"}}]', ["c1", "c2", "cUpdated", "c4"]),
        ('delete: [{c: "c3"}]', ["c1", "c2", "c4"]),
        ('set: [{c: "c3"}]', ["c3"]),
        (
            'upsert: [{where: {c: "c3"}, create: {c: "should not matter"}, '
            'update: {c: "cUpdated"}}, {where: {c: "c5"}, create: {c: "cNew"}, '
            'update: {c: "should not matter"}}]',
            ["c1", "c2", "cUpdated", "c4", "cNew"],
        ),
        ('disconnect: [{c: "c3"}]', ["c1", "c2", "c4"]),
        # updateMany runs before deleteMany.
        (
            'updateMany: [{where: {c_in: ["c1", "c3"]}, data: {test: "gone"}}], '
            'deleteMany: [{test: "gone"}]',
            ["c2", "c4"],
        ),
    ],
)
def test_a_create_followed_by_another_operation(
    database: Database, operations: str, children: list[str]
) -> None:
    def case(s: Service) -> None:
        with_c1_c2(s)
        data = s.data(
            'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: {'
            f'create: [{{c: "c3"}}, {{c: "c4"}}], {operations}}}}}) {CHILDREN} }}'
        )
        assert data == {"updateParent": {"childrenOpt": [{"c": c} for c in children]}}

    on_every_variant(database, "PMToCM", case)


def upsert_parent(update: str, fields: str = CHILDREN) -> str:
    return (
        'mutation { upsertParent(where: {p: "p1"}, create: {p: "never"}, '
        f"update: {{{update}}}) {fields} }}"
    )


def test_nested_operations_in_the_update_branch_of_an_upsert(database: Database) -> None:
    def pm_c1opt(s: Service) -> None:
        with_c1_c2(s)
        s.data('mutation { createChild(data: {c: "loose"}) { c } }')
        ops = (
            ('childrenOpt: {connect: [{c: "loose"}]}', ["c1", "c2", "loose"]),
            ('childrenOpt: {disconnect: [{c: "c1"}]}', ["c2", "loose"]),
            ('childrenOpt: {delete: [{c: "c2"}]}', ["loose"]),
            ('childrenOpt: {update: [{where: {c: "loose"}, data: {test: "t"}}]}', ["loose"]),
            ('childrenOpt: {create: [{c: "new"}], deleteMany: [{test: "t"}]}', ["new"]),
            ("childrenOpt: {set: []}", []),
        )
        for update, children in ops:
            data = s.data(upsert_parent(update))
            assert data == {"upsertParent": {"childrenOpt": [{"c": c} for c in children]}}
        assert s.data("{ parents { p } }") == {"parents": [{"p": "p1"}]}

    def pm_c1req(s: Service) -> None:
        with_c1_c2(s)
        must_fail(s, upsert_parent('childrenOpt: {disconnect: [{c: "c1"}]}'), 3042, REQUIRED_3042)
        must_fail(s, upsert_parent('childrenOpt: {delete: [{c: "c9"}]}'), 3039)

    def p1_c1(s: Service) -> None:
        s.data('mutation { createParent(data: {p: "p1", childOpt: {create: {c: "c1"}}}) { p } }')
        fields = "{ childOpt { c } }"
        must_fail(
            s, upsert_parent("childOpt: {deleteMany: {}}", fields), 0, "'childOpt.deleteMany'"
        )
        data = s.data(upsert_parent("childOpt: {disconnect: true}", fields))
        assert data == {"upsertParent": {"childOpt": None}}
        must_fail(s, upsert_parent("childOpt: {delete: true}", fields), 3041)
        data = s.data(upsert_parent('childOpt: {connect: {c: "c1"}}', fields))
        assert data == {"upsertParent": {"childOpt": {"c": "c1"}}}
        data = s.data(upsert_parent("childOpt: {delete: true}", fields))
        assert data == {"upsertParent": {"childOpt": None}}
        assert s.data("{ children { c } }") == {"children": []}

    on_every_variant(database, "PMToC1opt", pm_c1opt)
    on_every_variant(database, "PMToC1req", pm_c1req)
    on_every_variant(database, "P1optToC1opt", p1_c1)


SELF = """
type Person {
  id: ID! @id
  name: String! @unique
  partner: Person @relation(name: "Partners", link: INLINE)
  partnerOf: Person @relation(name: "Partners")
  mother: Person @relation(name: "Mothers", link: INLINE)
  children: [Person] @relation(name: "Mothers")
  friends: [Person] @relation(name: "Friends")
  friendOf: [Person] @relation(name: "Friends")
}
"""


def test_self_relations_one_to_one_one_to_many_many_to_many(database: Database) -> None:
    with deployed(database, SELF) as s:
        s.data(
            'mutation { createPerson(data: {name: "ann", partner: {create: {name: "bob"}}, '
            'children: {create: [{name: "cid"}, {name: "dan"}]}, '
            'friends: {create: [{name: "eve"}]}}) { name } }'
        )
        data = s.data(
            '{ person(where: {name: "bob"}) { partnerOf { name } } '
            'cid: person(where: {name: "cid"}) { mother { name } } '
            'eve: person(where: {name: "eve"}) { friendOf { name } } }'
        )
        assert data == {
            "person": {"partnerOf": {"name": "ann"}},
            "cid": {"mother": {"name": "ann"}},
            "eve": {"friendOf": [{"name": "ann"}]},
        }
        # One to one: taking bob as partner moves him; one to many: update and delete children.
        data = s.data(
            'mutation { updatePerson(where: {name: "eve"}, data: {'
            'partner: {connect: {name: "bob"}}, '
            'friendOf: {disconnect: [{name: "ann"}]}}) { partner { name } friendOf { name } } }'
        )
        assert data == {"updatePerson": {"partner": {"name": "bob"}, "friendOf": []}}
        data = s.data(
            'mutation { updatePerson(where: {name: "ann"}, data: {children: {'
            'update: [{where: {name: "cid"}, data: {name: "cid2"}}], delete: [{name: "dan"}]}}) '
            "{ partner { name } children { name } friends { name } } }"
        )
        assert data == {
            "updatePerson": {"partner": None, "children": [{"name": "cid2"}], "friends": []}
        }
        # A node related to itself.
        data = s.data(
            'mutation { updatePerson(where: {name: "ann"}, data: {'
            'friends: {connect: [{name: "ann"}]}, partner: {connect: {name: "ann"}}}) '
            "{ friends { name } friendOf { name } partnerOf { name } } }"
        )
        assert data == {
            "updatePerson": {
                "friends": [{"name": "ann"}],
                "friendOf": [{"name": "ann"}],
                "partnerOf": {"name": "ann"},
            }
        }
        must_fail(
            s,
            'mutation { updatePerson(where: {name: "ann"}, '
            'data: {children: {disconnect: [{name: "bob"}]}}) { name } }',
            3041,
        )
