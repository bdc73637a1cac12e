"""Reading directive arguments: every misuse becomes a `SchemaError`, never an exception.

Split from the parser so that each stays readable: the parser walks types and fields, this
module knows how `@db(name:)`, `@relation(link:)` or `@default(value:)` must be written.
"""

from __future__ import annotations

import json
import re

from graphql import print_ast
from graphql.language import (
    BooleanValueNode,
    DirectiveNode,
    EnumValueNode,
    FloatValueNode,
    IntValueNode,
    StringValueNode,
    ValueNode,
)

from runtime.datamodel.schema import SchemaError


def read_directives(
    owner: str, field_name: str | None, nodes: tuple[DirectiveNode, ...], errors: list[SchemaError]
) -> dict[str, dict[str, ValueNode]]:
    directives: dict[str, dict[str, ValueNode]] = {}
    for directive in nodes:
        name = directive.name.value
        if name in directives:
            what = f"field `{field_name}`" if field_name else f"type `{owner}`"
            errors.append(
                SchemaError(
                    owner,
                    field_name,
                    f"The {what} specifies a directive more than once. Directives must appear "
                    f"exactly once on a {'field' if field_name else 'type'}.",
                )
            )
        directives[name] = {a.name.value: a.value for a in directive.arguments or ()}
    return directives


def string_argument(
    args: dict[str, ValueNode],
    argument: str,
    owner: str,
    field_name: str | None,
    directive: str,
    errors: list[SchemaError],
) -> str | None:
    value = args.get(argument)
    subject = f"The field `{field_name}`" if field_name else f"The type `{owner}`"
    if value is None:
        errors.append(
            SchemaError(
                owner,
                field_name,
                f"{subject} specifies the directive `@{directive}` but it's missing the required "
                f"argument `{argument}`.",
            )
        )
        return None
    if not isinstance(value, StringValueNode):
        errors.append(
            SchemaError(
                owner,
                field_name,
                f"The argument `{argument}` of `@{directive}` must be a String.",
            )
        )
        return None
    return value.value


def enum_argument(
    args: dict[str, ValueNode],
    argument: str,
    valid: tuple[str, ...],
    owner: str,
    field_name: str,
    directive: str,
    errors: list[SchemaError],
) -> str | None:
    value = args.get(argument)
    if value is None:
        return None
    text = value.value if isinstance(value, EnumValueNode | StringValueNode) else None
    if text not in valid:
        errors.append(
            SchemaError(
                owner,
                field_name,
                f"Valid values for the argument `{argument}` of `@{directive}` are: "
                f"{', '.join(valid)}.",
            )
        )
        return None
    return text


def read_default(
    model: str,
    name: str,
    kind: str,
    type_name: str,
    is_list: bool,
    args: dict[str, ValueNode],
    enum_values: dict[str, list[str]],
    errors: list[SchemaError],
) -> str | None:
    """The default as a string (Prisma's `CreateField.default` is the value's `toString`)."""
    value = args.get("value")
    if value is None:
        errors.append(
            SchemaError(
                model,
                name,
                f"The field `{name}` specifies the directive `@default` but it's missing the "
                "required argument `value`.",
            )
        )
        return None
    if kind == "relation" or is_list:
        errors.append(
            SchemaError(
                model,
                name,
                "The `@default` directive must only be placed on scalar fields that are not lists.",
            )
        )
        return None
    if kind == "enum":
        text = value.value if isinstance(value, EnumValueNode | StringValueNode) else None
        valid = enum_values[type_name]
        if text not in valid:
            errors.append(
                SchemaError(
                    model,
                    name,
                    "The default value is invalid for this enum. Valid values are: "
                    f"{', '.join(valid)}.",
                )
            )
            return None
        return text
    accepted = {
        "String": (StringValueNode,),
        "ID": (StringValueNode,),
        "UUID": (StringValueNode,),
        "Json": (StringValueNode,),
        "DateTime": (StringValueNode,),
        "Int": (IntValueNode,),
        "Float": (IntValueNode, FloatValueNode),
        "Boolean": (BooleanValueNode,),
    }[type_name]
    if not isinstance(value, accepted):
        errors.append(
            SchemaError(
                model,
                name,
                f"The value {print_ast(value)} is not a valid default for fields of type "
                f"{type_name}.",
            )
        )
        return None
    if isinstance(value, BooleanValueNode):
        return "true" if value.value else "false"
    assert isinstance(value, StringValueNode | IntValueNode | FloatValueNode)
    text = value.value
    if type_name == "Json":
        try:
            json.loads(text)
        except ValueError:
            errors.append(
                SchemaError(model, name, f"The default value {print_ast(value)} is not valid JSON.")
            )
            return None
    if type_name == "DateTime" and not re.match(r"^\d{4}(-\d\d(-\d\d([T ][\d:.]+Z?)?)?)?$", text):
        errors.append(
            SchemaError(
                model,
                name,
                f"The value {print_ast(value)} is not a valid default for fields of type DateTime.",
            )
        )
        return None
    return text
