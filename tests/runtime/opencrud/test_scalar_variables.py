"""Variables of built-in scalar types are coerced without graphql-core's per-request signature
building (`executor._SCALARS`): for every value that road takes, graphql-core's own coercion
gives the same value of the same type; every other value is left to graphql-core."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLString,
    build_schema,
    get_operation_ast,
    parse,
)
from graphql.execution.values import get_variable_values

from runtime.opencrud.executor import _NOT_PLAIN, _SCALARS

SCHEMA = build_schema("type Query { f(a: String, b: ID, c: Int, d: Float, e: Boolean): String }")
VALUES: list[Any] = [
    "a", "", "é 🎉", "12", 0, 1, -5, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53,
    2**53 + 1, -(2**53), 10**30, 1.0, 1.5, -0.0, 1e308, float("inf"), float("nan"), True,
    False, [1], {"a": 1}, None,
]  # fmt: skip
TYPES = [(GraphQLString, "String"), (GraphQLID, "ID"), (GraphQLInt, "Int"),
         (GraphQLFloat, "Float"), (GraphQLBoolean, "Boolean")]  # fmt: skip


@pytest.mark.parametrize(("scalar", "name"), TYPES)
def test_a_plain_value_is_coerced_as_graphql_core_coerces_it(scalar: Any, name: str):
    operation = get_operation_ast(parse(f"query($v: {name}!) {{ f }}"))
    assert operation is not None
    taken = 0
    for value in VALUES:
        fast = _SCALARS[scalar](value)
        if fast is _NOT_PLAIN:
            continue
        taken += 1
        reference = get_variable_values(SCHEMA, operation.variable_definitions, {"v": value})
        assert not isinstance(reference, list), (value, reference)
        assert reference.coerced["v"] == fast and type(reference.coerced["v"]) is type(fast)
    assert taken >= 2  # the road is taken for the values clients send
