"""Read a datamodel 1.1 document into models and enums, collecting every problem on the way.

Prisma reports all datamodel problems at once, so nothing here raises: each check appends a
`SchemaError` and carries on with the best reading it can make of the field. Relations are
resolved afterwards (`runtime.datamodel.relations`), once every type is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphql import GraphQLSyntaxError, parse, print_ast
from graphql.language import (
    EnumTypeDefinitionNode,
    FieldDefinitionNode,
    IntValueNode,
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    ObjectTypeDefinitionNode,
    TypeNode,
    ValueNode,
)

from runtime.datamodel.directives import (
    enum_argument,
    read_default,
    read_directives,
    string_argument,
)
from runtime.datamodel.schema import SCALAR_TYPES, Enum, Field, LinkTable, Model, SchemaError

RESERVED_TYPE_NAMES = frozenset(
    {
        "Mutation",
        "Query",
        "Subscription",
        "Node",
        "PageInfo",
        "BatchPayload",
        "Long",
        "MutationType",
    }
)
ENUM_VALUE = re.compile(r"^[A-Z][a-zA-Z0-9_]*$")
RELATION_NAME = re.compile(r"^[A-Z][a-zA-Z0-9_]{0,53}$")
ID_TYPES = frozenset({"ID", "UUID", "Int"})


@dataclass
class ParsedDatamodel:
    """Models and enums as written, before relations are inferred."""

    models: list[Model] = field(default_factory=list)
    enums: list[Enum] = field(default_factory=list)
    link_tables: list[LinkTable] = field(default_factory=list)
    errors: list[SchemaError] = field(default_factory=list)
    syntax_error: str | None = None


def parse_document(text: str) -> ParsedDatamodel:
    result = ParsedDatamodel()
    try:
        document = parse(text, no_location=True)
    except GraphQLSyntaxError as exc:
        result.syntax_error = exc.message
        result.errors.append(
            SchemaError("Global", None, f"There's a syntax error in the data model. {exc.message}")
        )
        return result

    objects: list[ObjectTypeDefinitionNode] = []
    enums: list[EnumTypeDefinitionNode] = []
    for definition in document.definitions:
        if isinstance(definition, ObjectTypeDefinitionNode):
            objects.append(definition)
        elif isinstance(definition, EnumTypeDefinitionNode):
            enums.append(definition)
        else:
            kind = type(definition).__name__.removesuffix("Node")
            name = getattr(getattr(definition, "name", None), "value", None) or "Global"
            result.errors.append(
                SchemaError(
                    name,
                    None,
                    f"A datamodel may only contain types and enums; `{kind}` is not supported.",
                )
            )

    seen: set[str] = set()
    for node in [*objects, *enums]:
        name = node.name.value
        if name.lower() in seen:
            description = (
                f"The enum type `{name}` is defined twice in the schema. Enum names must be unique."
                if isinstance(node, EnumTypeDefinitionNode)
                else f"The name of the type `{name}` occurs more than once. The detection of "
                "duplicates is performed case insensitive."
            )
            result.errors.append(SchemaError(name, None, description))
        seen.add(name.lower())
        if name in RESERVED_TYPE_NAMES or name in SCALAR_TYPES:
            result.errors.append(
                SchemaError(
                    name,
                    None,
                    f"The type `{name}` has is using a reserved type name. Please rename it.",
                )
            )

    enum_values = {e.name.value: [v.name.value for v in e.values or ()] for e in enums}
    link_nodes = [o for o in objects if _is_link_table(o)]
    model_names = {o.name.value for o in objects if o not in link_nodes}
    for node in enums:
        result.enums.append(_read_enum(node, result.errors))
    for node in objects:
        if node in link_nodes:
            result.link_tables.append(_read_link_table(node, model_names, result.errors))
        else:
            result.models.append(_read_model(node, model_names, enum_values, result.errors))
    return result


def _is_link_table(node: ObjectTypeDefinitionNode) -> bool:
    return any(d.name.value == "relationTable" for d in node.directives or ())


def _read_link_table(
    node: ObjectTypeDefinitionNode, model_names: set[str], errors: list[SchemaError]
) -> LinkTable:
    """A `@relationTable` type, checked as Prisma's RelationTableDirective shapes it."""
    name = node.name.value
    directives = read_directives(name, None, node.directives or (), errors)
    table = name
    if "db" in directives:
        table = string_argument(directives["db"], "name", name, None, "db", errors) or name
    fields: list[tuple[str, str, str]] = []
    for field_node in node.fields or ():
        field_name = field_node.name.value
        type_name, _, _, _ = _type_shape(field_node.type)
        field_directives = read_directives(name, field_name, field_node.directives or (), errors)
        if "id" in field_directives:
            description = (
                "The id field of a link table must be of type `ID!`."
                if type_name != "ID"
                else "Id fields on link tables are deprecated and this server does not create "
                "them. Please remove it from your datamodel."
            )
            errors.append(SchemaError(name, field_name, description))
            continue
        if type_name not in model_names:
            errors.append(
                SchemaError(
                    name, field_name, "A link table must not specify any additional scalar fields."
                )
            )
            continue
        column = field_name
        if "db" in field_directives:
            column = (
                string_argument(field_directives["db"], "name", name, field_name, "db", errors)
                or field_name
            )
        fields.append((field_name, type_name, column))
    if len(fields) != 2:
        errors.append(
            SchemaError(name, None, "A link table must specify exactly two relation fields.")
        )
    return LinkTable(name=name, table=table, fields=tuple(fields))


def _read_enum(node: EnumTypeDefinitionNode, errors: list[SchemaError]) -> Enum:
    name = node.name.value
    values = [v.name.value for v in node.values or ()]
    invalid = [v for v in values if not ENUM_VALUE.match(v) or len(v) > 191]
    if invalid:
        listed = ", ".join(f"`{v}`" for v in invalid)
        errors.append(
            SchemaError(
                name,
                None,
                f"The enum type `{name}` contains invalid enum values. Those are invalid: "
                f"{listed}.",
            )
        )
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        errors.append(
            SchemaError(
                name, None, f"The enum type `{name}` defines the value `{duplicates[0]}` twice."
            )
        )
    if not values:
        errors.append(SchemaError(name, None, f"The enum type `{name}` must have values."))
    directives = read_directives(name, None, node.directives or (), errors)
    old_name = None
    if "rename" in directives:
        old_name = string_argument(directives["rename"], "oldName", name, None, "rename", errors)
    return Enum(name=name, values=tuple(dict.fromkeys(values)), old_name=old_name)


def _read_model(
    node: ObjectTypeDefinitionNode,
    model_names: set[str],
    enum_values: dict[str, list[str]],
    errors: list[SchemaError],
) -> Model:
    name = node.name.value
    if node.interfaces:
        errors.append(
            SchemaError(
                name,
                None,
                f"The model `{name}` has the implements Node annotation. This is deprecated, "
                "please do not use an annotation.",
            )
        )
    type_directives = read_directives(name, None, node.directives or (), errors)
    db_name = old_name = None
    if "db" in type_directives:
        db_name = string_argument(type_directives["db"], "name", name, None, "db", errors)
    if "rename" in type_directives:
        old_name = string_argument(
            type_directives["rename"], "oldName", name, None, "rename", errors
        )
    if "embedded" in type_directives:
        errors.append(
            SchemaError(
                name,
                None,
                f"The type `{name}` is marked as embedded but this connector does not support "
                "embedded types.",
            )
        )
    fields: list[Field] = []
    seen: set[str] = set()
    for field_node in node.fields or ():
        field_name = field_node.name.value
        if field_name.lower() in seen:
            errors.append(
                SchemaError(
                    name,
                    field_name,
                    f"The type `{name}` has a duplicate fieldName. The detection of duplicates is "
                    "performed case insensitive. ",
                )
            )
            continue
        seen.add(field_name.lower())
        read = _read_field(name, field_node, model_names, enum_values, errors)
        if read is not None:
            fields.append(read)

    ids = [f for f in fields if f.is_id]
    if not ids:
        errors.append(
            SchemaError(
                name,
                None,
                f"One field of the type `{name}` must be marked as the id field with the `@id` "
                "directive.",
            )
        )
    elif len(ids) > 1:
        errors.append(
            SchemaError(
                name,
                ids[1].name,
                f"The type `{name}` marks more than one field with `@id`; exactly one is allowed.",
            )
        )
    columns: dict[str, str] = {}
    for f in fields:
        if f.kind == "relation" or f.is_list:
            continue
        if f.column in columns:
            errors.append(
                SchemaError(
                    name,
                    f.name,
                    f"The field `{f.name}` uses the column name `{f.column}`, which the field "
                    f"`{columns[f.column]}` uses already.",
                )
            )
        columns[f.column] = f.name
    return Model(name=name, fields=tuple(fields), db_name=db_name, old_name=old_name)


SEQUENCE_MISPLACED = (
    "The directive `@sequence` must only be specified for fields that are marked as id, are of "
    "type `Int` and use the sequence strategy. E.g. `id: Int! @id(strategy: SEQUENCE)`."
)


def _read_sequence(
    model: str,
    name: str,
    type_name: str,
    values: dict,
    args: dict[str, ValueNode],
    errors: list[SchemaError],
) -> None:
    """`@sequence(name:, initialValue:, allocationSize:)`, read as Prisma's SequenceDirective."""
    if not values.get("is_id") or type_name != "Int" or values.get("id_strategy") != "SEQUENCE":
        errors.append(SchemaError(model, name, SEQUENCE_MISPLACED))
        return
    values["sequence_name"] = string_argument(args, "name", model, name, "sequence", errors)
    for argument, key in (
        ("initialValue", "sequence_initial"),
        ("allocationSize", "sequence_allocation"),
    ):
        value = args.get(argument)
        if not isinstance(value, IntValueNode):
            errors.append(
                SchemaError(
                    model,
                    name,
                    f"The field `{name}` specifies the directive `@sequence` but it's missing the "
                    f"required argument `{argument}` (an Int).",
                )
            )
            continue
        values[key] = int(value.value)


def _type_shape(type_node: TypeNode) -> tuple[str, bool, bool, bool]:
    """(named type, required, list, well formed) of a field's type expression."""
    required = isinstance(type_node, NonNullTypeNode)
    inner = type_node.type if isinstance(type_node, NonNullTypeNode) else type_node
    if isinstance(inner, ListTypeNode):
        element = inner.type
        element = element.type if isinstance(element, NonNullTypeNode) else element
        if isinstance(element, NamedTypeNode):
            return element.name.value, required, True, True
        named: TypeNode = element
        while isinstance(named, ListTypeNode | NonNullTypeNode):
            named = named.type
        assert isinstance(named, NamedTypeNode)
        return named.name.value, required, True, False
    assert isinstance(inner, NamedTypeNode)
    return inner.name.value, required, False, True


def _read_field(
    model: str,
    node: FieldDefinitionNode,
    model_names: set[str],
    enum_values: dict[str, list[str]],
    errors: list[SchemaError],
) -> Field | None:
    name = node.name.value
    type_name, required, is_list, well_formed = _type_shape(node.type)
    type_string = print_ast(node.type)
    before = len(errors)
    if type_name in SCALAR_TYPES:
        kind = "scalar"
    elif type_name in enum_values:
        kind = "enum"
    elif type_name in model_names:
        kind = "relation"
    else:
        errors.append(
            SchemaError(
                model,
                name,
                f"The field `{name}` has the type `{type_string}` but there's no type or enum "
                "declaration with that name.",
            )
        )
        return None
    if not well_formed:
        errors.append(
            SchemaError(
                model,
                name,
                f"The field `{name}` has the wrong format: `{type_string}`. Lists of lists are not "
                "supported.",
            )
        )
    directives = read_directives(model, name, node.directives or (), errors)
    values: dict = {
        "name": name,
        "type_name": type_name,
        "kind": kind,
        "is_required": required or (kind == "relation" and is_list),
        "is_list": is_list,
    }

    if "id" in directives:
        values["is_id"] = True
        values["id_strategy"] = (
            enum_argument(
                directives["id"],
                "strategy",
                ("AUTO", "NONE", "SEQUENCE"),
                model,
                name,
                "id",
                errors,
            )
            or "AUTO"
        )
        if type_name not in ID_TYPES or is_list:
            errors.append(
                SchemaError(
                    model,
                    name,
                    "Fields that are marked as id must be of type `ID!`, `UUID!` or `Int!`.",
                )
            )
        elif not required:
            errors.append(
                SchemaError(model, name, "Fields that are marked as id must be required.")
            )
        if values["id_strategy"] == "SEQUENCE" and type_name != "Int":
            errors.append(
                SchemaError(model, name, "Only `Int!` id fields can use the SEQUENCE strategy.")
            )

    if "sequence" in directives:
        _read_sequence(model, name, type_name, values, directives["sequence"], errors)

    if "unique" in directives:
        if kind == "relation" or is_list:
            errors.append(
                SchemaError(
                    model,
                    name,
                    f"The field `{name}` is marked as unique but only scalar fields that are not "
                    "lists can be unique.",
                )
            )
        elif not values.get("is_id"):  # an id is unique already: no second index for it
            values["is_unique"] = True

    if "default" in directives:
        values["default"] = read_default(
            model, name, kind, type_name, is_list, directives["default"], enum_values, errors
        )

    for behaviour in ("createdAt", "updatedAt"):
        if behaviour in directives:
            if type_name != "DateTime" or is_list:
                errors.append(
                    SchemaError(
                        model,
                        name,
                        f"Fields that are marked as @{behaviour} must be of type `DateTime!`.",
                    )
                )
            if values.get("behaviour"):
                errors.append(
                    SchemaError(
                        model,
                        name,
                        f"The field `{name}` cannot be marked with both `@createdAt` and "
                        "`@updatedAt`.",
                    )
                )
            values["behaviour"] = behaviour

    if kind != "relation" and is_list:
        strategy = None
        if "scalarList" in directives:
            strategy = enum_argument(
                directives["scalarList"],
                "strategy",
                ("RELATION", "EMBEDDED"),
                model,
                name,
                "scalarList",
                errors,
            )
        if strategy != "RELATION" and len(errors) == before:
            errors.append(
                SchemaError(
                    model,
                    name,
                    f"The field `{name}` is a scalar list. PostgreSQL stores scalar lists in a "
                    "table of their own: add `@scalarList(strategy: RELATION)`.",
                )
            )
    elif "scalarList" in directives:
        errors.append(
            SchemaError(
                model,
                name,
                "Fields that are marked as `@scalarList` must be lists of a scalar or enum type.",
            )
        )

    if "db" in directives:
        values["db_name"] = string_argument(directives["db"], "name", model, name, "db", errors)
    if "rename" in directives:
        values["old_name"] = string_argument(
            directives["rename"], "oldName", model, name, "rename", errors
        )

    if "relation" in directives:
        args = directives["relation"]
        if kind != "relation":
            errors.append(
                SchemaError(
                    model,
                    name,
                    f"The field `{name}` is a scalar field and cannot specify the `@relation` "
                    "directive.",
                )
            )
        else:
            if "name" in args:
                relation_name = string_argument(args, "name", model, name, "relation", errors)
                if relation_name is not None and not RELATION_NAME.match(relation_name):
                    errors.append(
                        SchemaError(
                            model,
                            name,
                            f"The field `{name}` has an invalid name in the `@relation` directive. "
                            "It can only have up to 54 characters and must have the shape "
                            "[A-Z][a-zA-Z0-9]*",
                        )
                    )
                values["relation_name"] = relation_name
            if "oldName" in args:
                values["old_relation_name"] = string_argument(
                    args, "oldName", model, name, "relation", errors
                )
            values["link"] = enum_argument(
                args, "link", ("INLINE", "TABLE"), model, name, "relation", errors
            )
            values["on_delete"] = (
                enum_argument(
                    args, "onDelete", ("CASCADE", "SET_NULL"), model, name, "relation", errors
                )
                or "SET_NULL"
            )
    return Field(**values)
