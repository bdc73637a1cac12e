"""The relation shapes of Prisma's nested-mutation specs (`SchemaBaseV11.scala`), each with
the SQL variants Prisma runs its specs on, and a helper that runs a case on every variant.

A case is written as Prisma's specs are: a datamodel, data made through the API, the request,
and the expected answer or error code and text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service, deploy


def _pair(parent_field: str, child_field: str, inline_on_parent: bool | None) -> str:
    """Parent/Child with `p`/`c` unique; the link INLINE on one side, or a link table."""
    parent_link = " @relation(link: INLINE)" if inline_on_parent is True else ""
    child_link = " @relation(link: INLINE)" if inline_on_parent is False else ""
    return f"""
type Parent {{
  id: ID! @id
  p: String! @unique
  {parent_field}{parent_link}
}}

type Child {{
  id: ID! @id
  c: String! @unique
  {child_field}{child_link}
  test: String
}}
"""


SHAPES: dict[str, list[str]] = {
    "P1reqToC1req": [
        _pair("childReq: Child!", "parentReq: Parent!", True),
        _pair("childReq: Child!", "parentReq: Parent!", False),
    ],
    "P1optToC1req": [
        _pair("childOpt: Child", "parentReq: Parent!", True),
        _pair("childOpt: Child", "parentReq: Parent!", False),
    ],
    "P1optToC1opt": [
        _pair("childOpt: Child", "parentOpt: Parent", True),
        _pair("childOpt: Child", "parentOpt: Parent", False),
    ],
    "P1reqToC1opt": [
        _pair("childReq: Child!", "parentOpt: Parent", True),
        _pair("childReq: Child!", "parentOpt: Parent", False),
    ],
    "PMToC1req": [
        _pair("childrenOpt: [Child]", "parentReq: Parent!", False),
        _pair("childrenOpt: [Child]", "parentReq: Parent!", None),
    ],
    "PMToC1opt": [
        _pair("childrenOpt: [Child]", "parentOpt: Parent", False),
        _pair("childrenOpt: [Child]", "parentOpt: Parent", None),
    ],
    "P1reqToCM": [
        _pair("childReq: Child!", "parentsOpt: [Parent]", True),
        _pair("childReq: Child!", "parentsOpt: [Parent]", None),
    ],
    "P1optToCM": [
        _pair("childOpt: Child", "parentsOpt: [Parent]", True),
        _pair("childOpt: Child", "parentsOpt: [Parent]", None),
    ],
    "PMToCM": [_pair("childrenOpt: [Child]", "parentsOpt: [Parent]", None)],
}

REQUIRED_3042 = (
    "The change you are trying to make would violate the required relation 'ChildToParent' "
    "between Child and Parent"
)


@contextmanager
def deployed(database: Database, datamodel: str) -> Iterator[Service]:
    service = deploy(database, datamodel)
    try:
        yield service
    finally:
        service.conn.close()


def on_every_variant(database: Database, shape: str, case: Callable[[Service], None]) -> None:
    """`schemaX.test { ... }`: the case on each datamodel variant, each on a fresh service."""
    for datamodel in SHAPES[shape]:
        with deployed(database, datamodel) as service:
            case(service)


def must_fail(
    service: Service,
    query: str,
    code: int,
    contains: str = "",
    variables: dict[str, Any] | None = None,
) -> dict:
    """`server.queryThatMustFail`: one error, its code (0: no code), text in its message."""
    result = service.query(query, variables)
    assert len(result.get("errors", [])) == 1, result
    error = result["errors"][0]
    assert error.get("code", 0) == code, result
    assert contains in " ".join(e["message"] for e in result["errors"]), result
    return error
