"""Document validation with Sangria's texts where clients and Prisma's specs match on them.

graphql-core reports a bad input literal as, say, "Expected value of type 'T' not to include
unknown field 'x'" or "Expected value of non-null type 'String!' not to be None."; the Prisma
server (Sangria) says, per violation, "Argument 'data' expected type 'ParentUpdateInput!' but
got: {...}. Reason: 'childOpt.deleteMany' Field 'deleteMany' is not defined in the input type
'ChildUpdateOneWithoutParentOptInput'." (or "Reason: 'key' String value expected"), followed by
the position and the source line. `validate_document` runs graphql-core's rules and replaces
its errors for these two kinds, unknown input fields and bad scalar literals, with Sangria's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    BooleanValueNode,
    DocumentNode,
    FloatValueNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    ListValueNode,
    Node,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValidationRule,
    VariableNode,
    get_location,
    validate,
)

# Sangria's coercion violations of the built-in scalars; Prisma's own scalars (DateTime, Json,
# Long, UUID: `service._prisma_scalars`) raise theirs from `parse_literal`.
SCALAR_EXPECTED = {
    "String": ("String value expected", (StringValueNode,)),
    "Int": ("Int value expected", (IntValueNode,)),
    "Float": ("Float or Int value expected", (IntValueNode, FloatValueNode)),
    "Boolean": ("Boolean value expected", (BooleanValueNode,)),
    "ID": ("String or Int value expected", (StringValueNode, IntValueNode)),
}
INT_RANGE = range(-(2**31), 2**31)

Violation = tuple[tuple[str, ...], Node, str]


def validate_document(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    sangria: list[GraphQLError] = []
    replaced: set[int] = set()
    reasons: set[str] = set()

    class SangriaArgumentValues(ValidationRule):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            argument = self.context.get_argument()
            if argument is None:
                return
            for path, at, reason in violations(node.value, argument.type, ()):
                replaced.update(n.loc.start for n in _with_value(at) if n.loc is not None)
                reasons.add(reason)
                message = (
                    f"Argument '{node.name.value}' expected type '{argument.type}' but got: "
                    f"{compact(node.value)}. Reason: '{'.'.join(path)}' {reason}"
                )
                sangria.append(GraphQLError(message + source_excerpt(node.value), [node.value, at]))

    validate(schema, document, [SangriaArgumentValues])
    kept = [e for e in validate(schema, document) if not _replaced(e, replaced, reasons)]
    return kept + sangria


def violations(value: Node, t: GraphQLInputType, path: tuple[str, ...]) -> Iterator[Violation]:
    """What Sangria reports for a literal: unknown fields and bad scalars, with its paths."""
    required = isinstance(t, GraphQLNonNull)
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    if isinstance(value, VariableNode):
        return
    if isinstance(value, NullValueNode):
        if required and path and isinstance(t, GraphQLScalarType):
            yield path, value, _scalar_problem(t, value) or "Expected non-null value"
        return
    if isinstance(t, GraphQLList):
        if isinstance(value, ListValueNode):
            for i, item in enumerate(value.values):
                indexed = (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",)
                yield from violations(item, t.of_type, indexed)
        else:  # a single value coerced into a one-element list
            yield from violations(value, t.of_type, path)
        return
    if isinstance(t, GraphQLInputObjectType) and isinstance(value, ObjectValueNode):
        for f in value.fields:
            name = f.name.value
            if name not in t.fields:
                reason = f"Field '{name}' is not defined in the input type '{t.name}'."
                yield (*path, name), f, reason
            else:
                yield from violations(f.value, t.fields[name].type, (*path, name))
        return
    if isinstance(t, GraphQLScalarType) and path:
        problem = _scalar_problem(t, value)
        if problem is not None:
            yield path, value, problem


def _scalar_problem(t: GraphQLScalarType, value: Node) -> str | None:
    """Sangria's text for a literal the scalar refuses; None when it is fine."""
    if t.name in SCALAR_EXPECTED:
        expected, kinds = SCALAR_EXPECTED[t.name]
        if not isinstance(value, kinds):
            return expected
        if isinstance(value, IntValueNode) and t.name == "Int":
            return None if int(value.value) in INT_RANGE else expected
        return None
    try:
        t.parse_literal(value)
    except GraphQLError as exc:
        return exc.message
    except (TypeError, ValueError):
        return f"{t.name} value expected"
    return None


def compact(value: Node) -> str:
    """A literal as Sangria renders it in messages: `{a: 1, b: [X, "y"]}`, on one line."""
    if isinstance(value, ObjectValueNode):
        return "{" + ", ".join(f"{f.name.value}: {compact(f.value)}" for f in value.fields) + "}"
    if isinstance(value, ListValueNode):
        return "[" + ", ".join(compact(v) for v in value.values) + "]"
    if isinstance(value, StringValueNode):
        return json.dumps(value.value, ensure_ascii=False)
    if isinstance(value, VariableNode):
        return f"${value.name.value}"
    if isinstance(value, NullValueNode):
        return "null"
    return str(getattr(value, "value", ""))


def source_excerpt(node: Node) -> str:
    """Sangria's position suffix: ` (line l, column c):`, the source line, a caret."""
    loc = node.loc
    if loc is None:
        return ""
    where = get_location(loc.source, loc.start)
    line = loc.source.body.splitlines()[where.line - 1]
    return f" (line {where.line}, column {where.column}):\n{line}\n{' ' * (where.column - 1)}^"


def _with_value(node: Node) -> list[Node]:
    """A reported node and, for an object field, its value (graphql-core reports either)."""
    value = getattr(node, "value", None)
    return [node, value] if isinstance(value, Node) else [node]


def _replaced(error: GraphQLError, starts: set[int], reasons: set[str]) -> bool:
    """graphql-core's error for a violation reported in Sangria's words: at the same node, or
    (a scalar's own GraphQLError comes without nodes) with the same text."""
    nodes = error.nodes or []
    if not nodes:
        return error.message in reasons
    return nodes[0].loc is not None and nodes[0].loc.start in starts
