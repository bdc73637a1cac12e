"""Nested mutations inside `update` and `upsert` on every relation shape, ported from Prisma's
`nonEmbedded/nestedMutations/*InsideUpdateSpec` and `*InsideUpsertSpec` (same datamodels, data,
requests and expected answers or codes)."""

from __future__ import annotations

from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service
from tests.runtime.opencrud.prisma_shapes import (
    REQUIRED_3042,
    deployed,
    must_fail,
    on_every_variant,
)


def create_parent_with(service: Service, field: str, c: str = "c1", p: str = "p1") -> str:
    nested = (
        f'{{create: {{c: "{c}"}}}}' if not field.endswith("s") else f'{{create: [{{c: "{c}"}}]}}'
    )
    return service.data(
        f'mutation {{ createParent(data: {{p: "{p}", {field}: {nested}}}) {{ id }} }}'
    )["createParent"]["id"]


# Nested create ------------------------------------------------------------------------------


def test_create_in_update_p1req_c1req_breaks_the_old_child(database: Database) -> None:
    def case(s: Service) -> None:
        parent = create_parent_with(s, "childReq")
        must_fail(
            s,
            f'mutation {{ updateParent(where: {{id: "{parent}"}}, data: {{p: "p2", '
            'childReq: {create: {c: "SomeC"}}}) { p childReq { c } } }',
            3042,
            REQUIRED_3042,
        )
        assert s.data("{ children { c parentReq { p } } }") == {
            "children": [{"c": "c1", "parentReq": {"p": "p1"}}]
        }

    on_every_variant(database, "P1reqToC1req", case)


def test_create_in_update_p1req_c1opt_replaces_the_child(database: Database) -> None:
    def case(s: Service) -> None:
        parent = create_parent_with(s, "childReq")
        data = s.data(
            f'mutation {{ updateParent(where: {{id: "{parent}"}}, data: {{p: "p2", '
            'childReq: {create: {c: "SomeC"}}}) { childReq { c } } }'
        )
        assert data == {"updateParent": {"childReq": {"c": "SomeC"}}}
        assert s.data("{ children(orderBy: c_ASC) { c parentOpt { p } } }") == {
            "children": [{"c": "SomeC", "parentOpt": {"p": "p2"}}, {"c": "c1", "parentOpt": None}]
        }

    on_every_variant(database, "P1reqToC1opt", case)


def test_create_in_update_p1opt_c1req_with_a_connected_child_fails(database: Database) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childOpt")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {create: {c: "c2"}}}) '
            "{ childOpt { c } } }",
            3042,
            REQUIRED_3042,
        )

    on_every_variant(database, "P1optToC1req", case)


def test_create_in_update_on_to_many_shapes(database: Database) -> None:
    for shape, field in (("PMToC1req", "childrenOpt"), ("PMToC1opt", "childrenOpt"),
                         ("PMToCM", "childrenOpt")):  # fmt: skip

        def case(s: Service, field: str = field) -> None:
            create_parent_with(s, field)
            data = s.data(
                f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{{field}: '
                f'{{create: [{{c: "c2"}}, {{c: "c3"}}]}}}}) '
                f"{{ {field}(orderBy: c_ASC) {{ c }} }} }}"
            )
            assert data == {"updateParent": {field: [{"c": "c1"}, {"c": "c2"}, {"c": "c3"}]}}

        on_every_variant(database, shape, case)


# Nested connect ------------------------------------------------------------------------------


def test_connect_in_update_p1req_c1req_with_the_child_in_a_relation_fails(
    database: Database,
) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childReq", "c1", "p1")
        create_parent_with(s, "childReq", "c2", "p2")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p2"}, data: {childReq: {connect: {c: "c1"}}}) '
            "{ childReq { c } } }",
            3042,
            REQUIRED_3042,
        )

    on_every_variant(database, "P1reqToC1req", case)


def test_connect_in_update_p1req_c1opt_fails_on_the_old_parent(database: Database) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childReq", "c1", "p1")
        create_parent_with(s, "childReq", "c2", "p2")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p2"}, data: {childReq: {connect: {c: "c1"}}}) '
            "{ childReq { c } } }",
            3042,
            REQUIRED_3042,
        )

    on_every_variant(database, "P1reqToC1opt", case)


def test_connect_in_update_p1opt_c1req_with_both_connected_fails(database: Database) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childOpt", "c1", "p1")
        create_parent_with(s, "childOpt", "c2", "p2")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p2"}, data: {childOpt: {connect: {c: "c1"}}}) '
            "{ childOpt { c } } }",
            3042,
            REQUIRED_3042,
        )

    on_every_variant(database, "P1optToC1req", case)


def test_connect_in_update_pm_c1req_moves_the_child(database: Database) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childrenOpt", "c1", "p1")
        s.data('mutation { createParent(data: {p: "p2"}) { id } }')
        data = s.data(
            'mutation { updateParent(where: {p: "p2"}, '
            'data: {childrenOpt: {connect: [{c: "c1"}]}}) { childrenOpt { c } } }'
        )
        assert data == {"updateParent": {"childrenOpt": [{"c": "c1"}]}}
        assert s.data('{ parent(where: {p: "p1"}) { childrenOpt { c } } }') == {
            "parent": {"childrenOpt": []}
        }

    on_every_variant(database, "PMToC1req", case)


# Nested disconnect ---------------------------------------------------------------------------


def test_disconnect_in_update(database: Database) -> None:
    def p1_c1(s: Service) -> None:
        create_parent_with(s, "childOpt")
        data = s.data(
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {disconnect: true}}) '
            "{ childOpt { c } } }"
        )
        assert data == {"updateParent": {"childOpt": None}}
        s.data('mutation { createParent(data: {p: "p2"}) { id } }')
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p2"}, data: {childOpt: {disconnect: true}}) '
            "{ childOpt { c } } }",
            3041,
        )

    def pm_c1req(s: Service) -> None:
        create_parent_with(s, "childrenOpt")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, '
            'data: {childrenOpt: {disconnect: [{c: "c1"}]}}) { childrenOpt { c } } }',
            3042,
            REQUIRED_3042,
        )

    def p1_c1req(s: Service) -> None:
        create_parent_with(s, "childOpt")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {disconnect: true}}) '
            "{ childOpt { c } } }",
            3042,
            REQUIRED_3042,
        )

    on_every_variant(database, "P1optToC1opt", p1_c1)
    on_every_variant(database, "PMToC1req", pm_c1req)
    on_every_variant(database, "P1optToC1req", p1_c1req)


# Nested delete -------------------------------------------------------------------------------


def test_delete_is_not_an_input_of_a_required_to_one(database: Database) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childReq")
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childReq: {delete: true}}) '
            "{ childReq { c } } }",
            0,
            "Argument 'data' expected type 'ParentUpdateInput!'",
        )
        must_fail(
            s,
            'mutation { upsertParent(where: {p: "p1"}, create: {p: "x", childReq: {create: '
            '{c: "x"}}}, update: {childReq: {delete: true}}) { childReq { c } } }',
            0,
            "Argument 'update' expected type 'ParentUpdateInput!'",
        )

    on_every_variant(database, "P1reqToC1req", case)
    on_every_variant(database, "P1reqToC1opt", case)


def test_delete_in_update_p1_c1(database: Database) -> None:
    def case(s: Service) -> None:
        create_parent_with(s, "childOpt")
        data = s.data(
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {delete: true}}) '
            "{ childOpt { c } } }"
        )
        assert data == {"updateParent": {"childOpt": None}}
        assert s.data("{ children { c } }") == {"children": []}
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {delete: true}}) '
            "{ childOpt { c } } }",
            3041,
        )

    on_every_variant(database, "P1optToC1opt", case)


def test_delete_in_update_fails_when_another_required_relation_would_break(
    database: Database,
) -> None:
    for on_child, on_other in (("@relation(link: INLINE)", ""), ("", "@relation(link: INLINE)")):
        datamodel = f"""
type Parent {{
  id: ID! @id
  p: String! @unique
  childrenOpt: [Child]
}}
type Child {{
  id: ID! @id
  c: String! @unique
  parentsOpt: [Parent]
  otherReq: Other! {on_child}
}}
type Other {{
  id: ID! @id
  o: String! @unique
  childReq: Child! {on_other}
}}
"""
        with deployed(database, datamodel) as s:
            s.data('mutation { createOther(data: {o: "o1", childReq: {create: {c: "c1"}}}) { o } }')
            s.data(
                'mutation { createParent(data: {p: "p1", childrenOpt: {connect: {c: "c1"}}}) '
                "{ p } }"
            )
            must_fail(
                s,
                'mutation { updateParent(where: {p: "p1"}, data: '
                '{childrenOpt: {delete: [{c: "c1"}]}}) '
                "{ childrenOpt { c } } }",
                3042,
                "The change you are trying to make would violate the required relation "
                "'ChildToOther' between Child and Other",
            )
            assert s.data('{ parent(where: {p: "p1"}) { childrenOpt { c } } }') == {
                "parent": {"childrenOpt": [{"c": "c1"}]}
            }


# deleteMany / updateMany ----------------------------------------------------------------------


def test_many_operations_are_not_inputs_of_a_to_one(database: Database) -> None:
    def case(s: Service) -> None:
        s.data('mutation { createParent(data: {p: "p1"}) { id } }')
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {p: "p2", childOpt: '
            '{deleteMany: {where: {c: "c"}}}}) { childOpt { c } } }',
            0,
            " Reason: 'childOpt.deleteMany' Field 'deleteMany' is not defined in the input type "
            "'ChildUpdateOneWithoutParentOptInput'.",
        )
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {p: "p2", childOpt: '
            '{updateMany: {where: {c: "c"}, data: {c: "d"}}}}) { childOpt { c } } }',
            0,
            " Reason: 'childOpt.updateMany' Field 'updateMany' is not defined in the input type "
            "'ChildUpdateOneWithoutParentOptInput'.",
        )

    on_every_variant(database, "P1optToC1opt", case)


def test_delete_many_and_update_many_in_update(database: Database) -> None:
    for shape in ("PMToC1req", "PMToC1opt", "PMToCM"):

        def case(s: Service) -> None:
            s.data(
                'mutation { createParent(data: {p: "p1", childrenOpt: {create: '
                '[{c: "c1"}, {c: "c2"}, {c: "c3"}]}}) { id } }'
            )
            s.data(
                'mutation { createParent(data: {p: "p2", childrenOpt: {create: [{c: "c4"}]}}) '
                "{ id } }"
            )
            data = s.data(
                'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: {'
                'updateMany: [{where: {c_in: ["c1", "c4"]}, data: {test: "u"}}], '
                'deleteMany: [{c: "c2"}, {c_contains: "4"}]}}) '
                "{ childrenOpt(orderBy: c_ASC) { c test } } }"
            )
            assert data == {
                "updateParent": {
                    "childrenOpt": [{"c": "c1", "test": "u"}, {"c": "c3", "test": None}]
                }
            }
            assert s.data('{ child(where: {c: "c4"}) { test } }') == {"child": {"test": None}}

        on_every_variant(database, shape, case)


# set -----------------------------------------------------------------------------------------


def test_set_in_update(database: Database) -> None:
    def pm_cm(s: Service) -> None:
        s.data(
            'mutation { createParent(data: {p: "p1", childrenOpt: {create: '
            '[{c: "c1"}, {c: "c2"}, {c: "c3"}]}}) { id } }'
        )
        data = s.data(
            'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: {set: '
            '[{c: "c1"}, {c: "c2"}, {c: "c2"}]}}) { childrenOpt(orderBy: c_ASC) { c } } }'
        )
        assert data == {"updateParent": {"childrenOpt": [{"c": "c1"}, {"c": "c2"}]}}
        assert s.data('{ child(where: {c: "c3"}) { parentsOpt { p } } }') == {
            "child": {"parentsOpt": []}
        }

    def pm_c1req(s: Service) -> None:
        s.data(
            'mutation { createParent(data: {p: "p1", childrenOpt: {create: '
            '[{c: "c1"}, {c: "c2"}]}}) { id } }'
        )
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: {set: [{c: "c1"}]}}) '
            "{ childrenOpt { c } } }",
            3042,
            REQUIRED_3042,
        )

    on_every_variant(database, "PMToCM", pm_cm)
    on_every_variant(database, "PMToC1req", pm_c1req)


# update / upsert -----------------------------------------------------------------------------


def test_update_and_upsert_in_update_on_to_one(database: Database) -> None:
    for shape, field in (("P1optToC1opt", "childOpt"), ("P1reqToC1req", "childReq"),
                         ("P1optToCM", "childOpt"), ("P1reqToCM", "childReq")):  # fmt: skip

        def case(s: Service, field: str = field) -> None:
            create_parent_with(s, field)
            data = s.data(
                f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{{field}: '
                f'{{update: {{c: "c2"}}}}}}) {{ {field} {{ c }} }} }}'
            )
            assert data == {"updateParent": {field: {"c": "c2"}}}
            data = s.data(
                f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{{field}: '
                f'{{upsert: {{update: {{c: "c3"}}, create: {{c: "new"}}}}}}}}) '
                f"{{ {field} {{ c }} }} }}"
            )
            assert data == {"updateParent": {field: {"c": "c3"}}}

        on_every_variant(database, shape, case)


def test_upsert_in_update_to_one_creates_when_there_is_no_child(database: Database) -> None:
    def case(s: Service) -> None:
        s.data('mutation { createParent(data: {p: "p1"}) { id } }')
        data = s.data(
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: '
            '{upsert: {update: {c: "no"}, create: {c: "new"}}}}) { childOpt { c } } }'
        )
        assert data == {"updateParent": {"childOpt": {"c": "new"}}}

    on_every_variant(database, "P1optToC1opt", case)


def test_update_in_update_to_one_without_a_child_fails_with_3041(database: Database) -> None:
    def case(s: Service) -> None:
        s.data('mutation { createParent(data: {p: "p1"}) { id } }')
        must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {update: {c: "x"}}}) '
            "{ childOpt { c } } }",
            3041,
        )

    on_every_variant(database, "P1optToC1opt", case)


def test_update_and_upsert_in_update_on_to_many(database: Database) -> None:
    for shape in ("PMToC1req", "PMToC1opt", "PMToCM"):

        def case(s: Service) -> None:
            s.data(
                'mutation { createParent(data: {p: "p1", childrenOpt: {create: '
                '[{c: "c1"}, {c: "c2"}]}}) { id } }'
            )
            s.data(
                'mutation { createParent(data: {p: "p2", childrenOpt: {create: [{c: "c3"}]}}) '
                "{ id } }"
            )
            data = s.data(
                'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: {'
                'update: [{where: {c: "c1"}, data: {test: "u1"}}], '
                'upsert: [{where: {c: "c2"}, update: {test: "u2"}, create: {c: "no"}}, '
                '{where: {c: "c9"}, update: {test: "no"}, create: {c: "c9", test: "new"}}]}}) '
                "{ childrenOpt(orderBy: c_ASC) { c test } } }"
            )
            assert data == {"updateParent": {"childrenOpt": [
                {"c": "c1", "test": "u1"}, {"c": "c2", "test": "u2"}, {"c": "c9", "test": "new"},
            ]}}  # fmt: skip
            must_fail(
                s,
                'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: {'
                'update: [{where: {c: "c3"}, data: {test: "x"}}]}}) { p } }',
                3041,
            )

        on_every_variant(database, shape, case)


# Self relations ------------------------------------------------------------------------------

SELF = """
type Technology {
  id: ID! @id
  name: String! @unique
  childTechnologies: [Technology] @relation(name: "ChildTechnologies")
  parentTechnologies: [Technology] @relation(name: "ChildTechnologies")
}
"""


def test_pm_cm_self_relation_disconnect(database: Database) -> None:
    with deployed(database, SELF) as s:
        s.data(
            'mutation { createTechnology(data: {name: "techA", childTechnologies: '
            '{create: [{name: "techB"}, {name: "techC"}]}}) { name } }'
        )
        data = s.data(
            'mutation { updateTechnology(where: {name: "techA"}, data: {childTechnologies: '
            '{disconnect: [{name: "techB"}]}}) { childTechnologies { name } } }'
        )
        assert data == {"updateTechnology": {"childTechnologies": [{"name": "techC"}]}}
        assert s.data('{ technology(where: {name: "techB"}) { parentTechnologies { name } } }') == {
            "technology": {"parentTechnologies": []}
        }
        must_fail(
            s,
            'mutation { updateTechnology(where: {name: "techA"}, data: {childTechnologies: '
            '{disconnect: [{name: "techB"}]}}) { name } }',
            3041,
        )


def test_unknown_input_field_message_has_sangria_s_shape(database: Database) -> None:
    with deployed(database, SELF) as s:
        result = s.query(
            'mutation {\n  updateTechnology(where: {name: "a"}, data: {childTechnologies: '
            '{update: [{where: {name: "b"}, data: {bogus: 1}}]}}) { name }\n}'
        )
        assert result["data"] is None and len(result["errors"]) == 1
        error = result["errors"][0]
        assert error["message"] == (
            "Argument 'data' expected type 'TechnologyUpdateInput!' but got: "
            '{childTechnologies: {update: [{where: {name: "b"}, data: {bogus: 1}}]}}. '
            "Reason: 'childTechnologies.update[0].data.bogus' Field 'bogus' is not defined in "
            "the input type 'TechnologyUpdateWithoutParentTechnologiesDataInput'. "
            "(line 2, column 46):\n"
            '  updateTechnology(where: {name: "a"}, data: {childTechnologies: '
            '{update: [{where: {name: "b"}, data: {bogus: 1}}]}}) { name }\n' + " " * 45 + "^"
        )
        assert "code" not in error and len(error["locations"]) == 2


def test_3041_texts_name_what_prisma_s_check_knows(database: Database) -> None:
    def to_many(s: Service) -> None:
        parent = create_parent_with(s, "childrenOpt", "c1", "p1")
        other = s.data('mutation { createChild(data: {c: "c2"}) { id } }')["createChild"]["id"]
        error = must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: '
            '{update: [{where: {c: "c2"}, data: {test: "x"}}]}}) { p } }',
            3041,
        )
        assert error["message"] == (
            "The relation ChildToParent has no node for the model Parent connected to a Node "
            "for the model Child with the value 'c2' for the field 'c' on your mutation path."
        )
        error = must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childrenOpt: '
            '{delete: [{c: "c2"}]}}) { p } }',
            3041,
        )
        assert error["message"] == (
            f"The relation ChildToParent has no node for the model Parent with the value "
            f"'{parent}' for the field 'id' connected to a node for the model Child with the "
            f"value '{other}' for the field 'id'"
        )

    def to_one(s: Service) -> None:
        parent = s.data('mutation { createParent(data: {p: "p1"}) { id } }')["createParent"]["id"]
        error = must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {update: {c: "x"}}}) '
            "{ p } }",
            3041,
        )
        assert error["message"] == (
            "The relation ChildToParent has no node for the model Parent connected to a Node "
            "for the model Child on your mutation path."
        )
        error = must_fail(
            s,
            'mutation { updateParent(where: {p: "p1"}, data: {childOpt: {delete: true}}) { p } }',
            3041,
        )
        assert error["message"] == (
            f"The relation ChildToParent has no node for the model Parent with the value "
            f"'{parent}' for the field 'id' connected to a node for the model Child on your "
            "mutation path."
        )

    on_every_variant(database, "PMToC1opt", to_many)
    on_every_variant(database, "P1optToC1opt", to_one)
