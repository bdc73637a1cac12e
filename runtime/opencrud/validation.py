"""Document validation with Sangria's texts where clients and Prisma's specs match on them.

graphql-core reports an input field the type does not have as "Expected value of type 'T' not
to include unknown field 'x'"; the Prisma server (Sangria) says, per violation, "Argument 'data'
expected type 'ParentUpdateInput!' but got: {...}. Reason: 'childOpt.deleteMany' Field
'deleteMany' is not defined in the input type 'ChildUpdateOneWithoutParentOptInput'." followed
by the position and the source line. `validate_document` runs graphql-core's rules and replaces
those errors with Sangria's.
"""

from __future__ import annotations

import json
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLSchema,
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


def validate_document(schema: GraphQLSchema, document: DocumentNode) -> list[GraphQLError]:
    sangria: list[GraphQLError] = []
    inside: list[tuple[int, int]] = []

    class UnknownInputFields(ValidationRule):
        def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
            argument = self.context.get_argument()
            if argument is None:
                return
            found = list(unknown_fields(node.value, argument.type, ()))
            if not found or node.value.loc is None:
                return
            inside.append((node.value.loc.start, node.value.loc.end))
            for path, field, type_name in found:
                reason = (
                    f"'{'.'.join(path)}' Field '{field.name.value}' is not defined in the input "
                    f"type '{type_name}'."
                )
                message = (
                    f"Argument '{node.name.value}' expected type '{argument.type}' but got: "
                    f"{compact(node.value)}. Reason: {reason}"
                )
                sangria.append(
                    GraphQLError(message + source_excerpt(node.value), [node.value, field])
                )

    validate(schema, document, [UnknownInputFields])
    problems = [
        e
        for e in validate(schema, document)
        if not any(_within(n, inside) for n in e.nodes or ()) or "unknown field" not in e.message
    ]
    return problems + sangria


def unknown_fields(
    value: Node, t: GraphQLInputType, path: tuple[str, ...]
) -> Any:  # Iterator[(path, field node, input type name)]
    """The fields of a literal that its input type does not define, with Sangria's paths."""
    if isinstance(t, GraphQLNonNull):
        t = t.of_type
    if isinstance(t, GraphQLList):
        if isinstance(value, ListValueNode):
            for i, item in enumerate(value.values):
                indexed = (*path[:-1], f"{path[-1]}[{i}]") if path else (f"[{i}]",)
                yield from unknown_fields(item, t.of_type, indexed)
        else:  # a single value coerced into a one-element list
            yield from unknown_fields(value, t.of_type, path)
        return
    if isinstance(t, GraphQLInputObjectType) and isinstance(value, ObjectValueNode):
        for f in value.fields:
            name = f.name.value
            if name not in t.fields:
                yield (*path, name), f, t.name
            else:
                yield from unknown_fields(f.value, t.fields[name].type, (*path, name))


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


def _within(node: Node, ranges: list[tuple[int, int]]) -> bool:
    loc = node.loc
    return loc is not None and any(start <= loc.start < end for start, end in ranges)
