"""Root fields of a query (`user`, `users`, `usersConnection`, `node`) as whole statements."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from graphql import FieldNode, FragmentDefinitionNode, GraphQLNonNull, GraphQLSchema

from runtime.errors import PrismaError
from runtime.names import ident
from runtime.opencrud import errors
from runtime.opencrud.limits import capped
from runtime.opencrud.model import ApiModel, ApiSchema
from runtime.opencrud.naming import camel_case, plural
from runtime.opencrud.reads import ReadCompiler
from runtime.opencrud.statement import Statement, column
from runtime.opencrud.values import converter, plain


@dataclass
class CompiledField:
    """One root field: its SQL (returning JSON text), or the error it compiles to."""

    key: str
    nodes: list[FieldNode]
    kind: str  # "sql", "typename", "introspection"
    sql: str = ""
    statement: Statement | None = None
    error: PrismaError | None = None
    non_null: bool = False

    @cached_property
    def capped_sql(self) -> str:
        """The statement for a response budget (see `limits.capped`): its first parameter is
        the bytes the field may still answer."""
        return capped(self.sql)

    @cached_property
    def key_json(self) -> bytes:
        """The field's key as JSON (once: compiled fields serve every request after)."""
        return json.dumps(self.key).encode()


def root_fields(api: ApiSchema) -> dict[str, tuple[str, ApiModel]]:
    """Query field name -> (kind, model)."""
    names: dict[str, tuple[str, ApiModel]] = {}
    for model in api.models.values():
        names[camel_case(model.name)] = ("one", model)
        names[camel_case(plural(model.name))] = ("many", model)
        names[camel_case(plural(model.name)) + "Connection"] = ("connection", model)
    return names


def where_unique_field(model: ApiModel, where: dict[str, Any] | None) -> tuple[Any, Any]:
    """The one unique field a `WhereUniqueInput` names, and its value (3040/3045 otherwise)."""
    given = [(k, v) for k, v in (where or {}).items() if plain(v) is not None]
    if not given:
        raise errors.invalid_where_unique(model.name)
    if len(given) > 1:
        raise errors.several_unique_fields(model.name)
    name, value = given[0]
    return model.by_name[name], value


def compile_query_field(
    api: ApiSchema,
    graphql_schema: GraphQLSchema,
    fragments: dict[str, FragmentDefinitionNode],
    variables: dict[str, Any],
    key: str,
    nodes: list[FieldNode],
) -> CompiledField:
    name = nodes[0].name.value
    if name == "__typename":
        return CompiledField(key, nodes, "typename")
    if name.startswith("__"):
        return CompiledField(key, nodes, "introspection")
    query_type = graphql_schema.query_type
    assert query_type is not None
    definition = query_type.fields[name]
    st = Statement()
    compiler = ReadCompiler(api, graphql_schema, fragments, variables, st)
    compiled = CompiledField(key, nodes, "sql", statement=st)
    compiled.non_null = isinstance(definition.type, GraphQLNonNull)
    try:
        args = compiler.arguments(nodes[0], definition)
        if name == "node":
            compiled.sql = _node_sql(compiler, api, args["id"], nodes)
        else:
            kind, model = root_fields(api)[name]
            a = st.alias()
            type_name = f"{model.name}Connection" if kind == "connection" else model.name
            fields = compiler.sub_fields(nodes, type_name)
            if kind == "one":
                f, value = where_unique_field(model, args.get("where"))
                # The body's parameters come first in the text, so they are taken first.
                body = compiler.node_json(model, a, fields)
                p = st.param(value, converter(f.type_name, f.name))
                compiled.sql = (
                    f"SELECT (SELECT {body} FROM {st.table(model)} {a} "  # noqa: S608
                    f"WHERE {column(a, f)} = {p} LIMIT 1)::text"
                )
            elif kind == "many":
                compiled.sql = f"SELECT {compiler.list_json(model, a, args, fields)}::text"
            else:
                compiled.sql = f"SELECT {compiler.connection_json(model, a, args, fields)}::text"
    except PrismaError as exc:
        compiled.error = exc
    return compiled


def _node_sql(compiler: ReadCompiler, api: ApiSchema, node_id: Any, nodes: list[FieldNode]) -> str:
    """`node(id)`: the first model (of those with an `id: ID!`) holding a row with that id."""
    st = compiler.st
    candidates = []
    for model in sorted(api.models.values(), key=lambda m: m.name):
        id_field = model.field("id")
        if id_field is None or not id_field.is_id or id_field.type_name != "ID":
            continue
        a = st.alias()
        fields = compiler.sub_fields(nodes, model.name)
        body = compiler.node_json(model, a, fields)
        p = st.param(node_id, str)
        candidates.append(
            f"(SELECT {body} FROM {st.table(model)} {a} "  # noqa: S608
            f"WHERE {a}.{ident(id_field.column)} = {p})"
        )
    if not candidates:
        return "SELECT NULL::text"
    return f"SELECT COALESCE({', '.join(candidates)})::text"
