"""Nested `disconnect` and `delete` inside `update` on every relation shape, ported from
Prisma's `NestedDisconnectMutationInsideUpdateSpec` and `NestedDeleteMutationInsideUpdateSpec`.

Each case: p1 and p2 share what the shape allows (p1 has c1 and c2 where it can hold two, p2
has c3, or c1 too on a to-many child side), p1 disconnects or deletes c1."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service
from tests.runtime.opencrud.prisma_shapes import must_fail, on_every_variant

# shape -> (parent field, child field back, is the parent side a list, is the child side a list)
SIDES = {
    "P1optToC1opt": ("childOpt", "parentOpt", False, False),
    "P1optToC1req": ("childOpt", "parentReq", False, False),
    "PMToC1opt": ("childrenOpt", "parentOpt", True, False),
    "PMToC1req": ("childrenOpt", "parentReq", True, False),
    "P1optToCM": ("childOpt", "parentsOpt", False, True),
    "PMToCM": ("childrenOpt", "parentsOpt", True, True),
}


def setup(s: Service, shape: str) -> None:
    field, _, many, child_many = SIDES[shape]
    if many:
        s.data(
            f'mutation {{ createParent(data: {{p: "p1", {field}: {{create: '
            '[{c: "c1"}, {c: "c2"}]}}) { p } }'
        )
    else:
        s.data(
            f'mutation {{ createParent(data: {{p: "p1", {field}: {{create: {{c: "c1"}}}}}}) '
            "{ p } }"
        )
        s.data(
            'mutation { createChild(data: {c: "c2"'
            + (', parentReq: {create: {p: "px"}}' if shape == "P1optToC1req" else "")
            + "}) { c } }"
        )
    if child_many:
        value = '[{c: "c1"}]' if many else '{c: "c1"}'
        s.data(
            f'mutation {{ createParent(data: {{p: "p2", {field}: {{connect: {value}}}}}) {{ p }} }}'
        )


def state(s: Service, shape: str) -> dict:
    _, back, _, child_many = SIDES[shape]
    order = "(orderBy: p_ASC)" if child_many else ""
    children = s.data(f"{{ children(orderBy: c_ASC) {{ c {back}{order} {{ p }} }} }}")["children"]
    return {
        c["c"]: [p["p"] for p in c[back]] if child_many else (c[back] or {}).get("p")
        for c in children
    }


EXPECTED_DISCONNECT = {
    "P1optToC1opt": {"c1": None, "c2": None},
    "PMToC1opt": {"c1": None, "c2": "p1"},
    "P1optToCM": {"c1": ["p2"], "c2": []},
    "PMToCM": {"c1": ["p2"], "c2": ["p1"]},
}

EXPECTED_DELETE = {
    "P1optToC1opt": {"c2": None},
    "P1optToC1req": {"c2": "px"},
    "PMToC1opt": {"c2": "p1"},
    "PMToC1req": {"c2": "p1"},
    "P1optToCM": {"c2": []},
    "PMToCM": {"c2": ["p1"]},
}


def selector(shape: str) -> str:
    return '[{c: "c1"}]' if SIDES[shape][2] else "true"


@pytest.mark.parametrize("shape", sorted(EXPECTED_DISCONNECT))
def test_disconnect_in_update(database: Database, shape: str) -> None:
    def case(s: Service) -> None:
        setup(s, shape)
        field = SIDES[shape][0]
        s.data(
            f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{{field}: '
            f"{{disconnect: {selector(shape)}}}}}) {{ p }} }}"
        )
        assert state(s, shape) == EXPECTED_DISCONNECT[shape]

    on_every_variant(database, shape, case)


@pytest.mark.parametrize("shape", sorted(EXPECTED_DELETE))
def test_delete_in_update(database: Database, shape: str) -> None:
    def case(s: Service) -> None:
        setup(s, shape)
        field = SIDES[shape][0]
        s.data(
            f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{{field}: '
            f"{{delete: {selector(shape)}}}}}) {{ p }} }}"
        )
        assert state(s, shape) == EXPECTED_DELETE[shape]

    on_every_variant(database, shape, case)


def test_a_required_to_one_has_neither_disconnect_nor_delete(database: Database) -> None:
    def case(s: Service) -> None:
        s.data('mutation { createParent(data: {p: "p1", childReq: {create: {c: "c1"}}}) { p } }')
        for operation in ("disconnect", "delete"):
            must_fail(
                s,
                f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{childReq: '
                f"{{{operation}: true}}}}) {{ p }} }}",
                0,
                f"Reason: 'childReq.{operation}' Field '{operation}' is not defined in the input "
                "type 'ChildUpdateOneRequiredWithoutParentsOptInput'.",
            )

    on_every_variant(database, "P1reqToCM", case)
