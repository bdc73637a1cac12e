"""Nested `connect` inside `update` and `upsert` on every relation shape, ported from Prisma's
`NestedConnectMutationInsideUpdateSpec` and `NestedConnectMutationInsideUpsertSpec`: the data
made first, the request, the answer, then where every child ended up."""

from __future__ import annotations

import pytest

from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service
from tests.runtime.opencrud.prisma_shapes import must_fail, on_every_variant

P1 = 'mutation { createParent(data: {p: "p1"}) { p } }'
P2 = 'mutation { createParent(data: {p: "p2"}) { p } }'
C1 = 'mutation { createChild(data: {c: "c1"}) { c } }'


def parent_with(field: str, p: str, *children: str) -> str:
    nested = ", ".join(f'{{c: "{c}"}}' for c in children)
    value = f"[{nested}]" if field.endswith("s") or field.startswith("children") else nested
    return f'mutation {{ createParent(data: {{p: "{p}", {field}: {{create: {value}}}}}) {{ p }} }}'


def child_with(field: str, c: str, p: str) -> str:
    return (
        f'mutation {{ createChild(data: {{c: "{c}", {field}: {{create: {{p: "{p}"}}}}}}) {{ c }} }}'
    )


CASES = [
    # (shape, setup, parent field, connect value, answer, parents of the children afterwards)
    ("P1reqToC1opt", [parent_with("childReq", "p1", "c1"), C1.replace("c1", "c2")],
     "childReq", '{c: "c2"}', {"c": "c2"}, "parentOpt", {"c1": None, "c2": "p1"}),
    ("P1optToC1opt", [parent_with("childOpt", "p1", "c1"), parent_with("childOpt", "p2", "c2")],
     "childOpt", '{c: "c2"}', {"c": "c2"}, "parentOpt", {"c1": None, "c2": "p1"}),
    ("P1optToC1opt", [P1, C1], "childOpt", '{c: "c1"}', {"c": "c1"}, "parentOpt", {"c1": "p1"}),
    ("P1optToC1opt", [P1, parent_with("childOpt", "p2", "c1")],
     "childOpt", '{c: "c1"}', {"c": "c1"}, "parentOpt", {"c1": "p1"}),
    ("P1optToC1req", [parent_with("childOpt", "p2", "c1"), P1],
     "childOpt", '{c: "c1"}', {"c": "c1"}, "parentReq", {"c1": "p1"}),
    ("PMToC1req",
     [parent_with("childrenOpt", "p1", "c1"), parent_with("childrenOpt", "p2", "c2", "c3")],
     "childrenOpt", '[{c: "c2"}]', [{"c": "c1"}, {"c": "c2"}], "parentReq",
     {"c1": "p1", "c2": "p1", "c3": "p2"}),
    ("PMToC1opt", [parent_with("childrenOpt", "p1", "c1"), parent_with("childrenOpt", "p2", "c2")],
     "childrenOpt", '[{c: "c2"}]', [{"c": "c1"}, {"c": "c2"}], "parentOpt",
     {"c1": "p1", "c2": "p1"}),
    ("PMToC1opt", [P1, C1], "childrenOpt", '[{c: "c1"}]', [{"c": "c1"}], "parentOpt", {"c1": "p1"}),
    ("P1reqToCM", [parent_with("childReq", "p1", "c1"), parent_with("childReq", "p2", "c2")],
     "childReq", '{c: "c2"}', {"c": "c2"}, "parentsOpt", {"c1": [], "c2": ["p1", "p2"]}),
    ("P1optToCM", [parent_with("childOpt", "p1", "c1"), parent_with("childOpt", "p2", "c2")],
     "childOpt", '{c: "c2"}', {"c": "c2"}, "parentsOpt", {"c1": [], "c2": ["p1", "p2"]}),
    ("P1optToCM", [P1, C1], "childOpt", '{c: "c1"}', {"c": "c1"}, "parentsOpt", {"c1": ["p1"]}),
    ("PMToCM", [parent_with("childrenOpt", "p1", "c1"), parent_with("childrenOpt", "p2", "c2")],
     "childrenOpt", '[{c: "c2"}, {c: "c2"}]', [{"c": "c1"}, {"c": "c2"}], "parentsOpt",
     {"c1": ["p1"], "c2": ["p1", "p2"]}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("shape", "setup", "field", "connect", "answer", "back", "parents"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_connect_in_update(
    database: Database,
    shape: str,
    setup: list[str],
    field: str,
    connect: str,
    answer: object,
    back: str,
    parents: dict,
) -> None:
    def case(s: Service) -> None:
        for mutation in setup:
            s.data(mutation)
        order = "(orderBy: c_ASC)" if field.startswith("children") else ""
        data = s.data(
            f'mutation {{ updateParent(where: {{p: "p1"}}, data: {{{field}: '
            f"{{connect: {connect}}}}}) {{ {field}{order} {{ c }} }} }}"
        )
        assert data == {"updateParent": {field: answer}}
        order = "(orderBy: p_ASC)" if back.endswith("s") or back == "parentsOpt" else ""
        found = s.data(f"{{ children {{ c {back}{order} {{ p }} }} }}")["children"]
        where = {
            c["c"]: (
                [p["p"] for p in c[back]] if isinstance(c[back], list) else (c[back] or {}).get("p")
            )
            for c in found
        }
        assert where == parents

    on_every_variant(database, shape, case)


def test_connect_in_the_update_branch_of_an_upsert(database: Database) -> None:
    def case(s: Service) -> None:
        s.data(C1)
        s.data(P1)
        data = s.data(
            'mutation { upsertParent(where: {p: "p1"}, create: {p: "new p"}, '
            'update: {p: "p updated", childOpt: {connect: {c: "c1"}}}) { p childOpt { c } } }'
        )
        assert data == {"upsertParent": {"p": "p updated", "childOpt": {"c": "c1"}}}
        data = s.data(
            'mutation { upsertParent(where: {p: "nope"}, create: {p: "p3", '
            'childOpt: {connect: {c: "c1"}}}, update: {p: "never"}) { p childOpt { c } } }'
        )
        assert data == {"upsertParent": {"p": "p3", "childOpt": {"c": "c1"}}}
        must_fail(
            s,
            'mutation { upsertParent(where: {p: "p3"}, create: {p: "new p"}, '
            'update: {p: "p3 updated", childOpt: {connect: {c: "DOES NOT EXIST"}}}) '
            "{ childOpt { c } } }",
            3039,
            "No Node for the model Child with value DOES NOT EXIST for c found.",
        )

    on_every_variant(database, "P1optToCM", case)
