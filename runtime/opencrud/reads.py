"""Selections as SQL that returns the JSON of the answer (reference 5.1, 5.4).

Every root field of a query becomes one statement. Nested relations are correlated
sub-selects aggregated with `json_agg`, so the number of statements never depends on the number
of rows, and PostgreSQL writes every key (aliases included) and every value in its final form:
DateTime as `YYYY-MM-DDTHH:mm:ss.SSSZ`, Float as a number, Json embedded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
)

from runtime.names import ident, literal
from runtime.opencrud import errors
from runtime.opencrud.filters import where_condition
from runtime.opencrud.model import ApiField, ApiModel, ApiSchema
from runtime.opencrud.statement import Statement, column, json_object, related_condition
from runtime.opencrud.values import plain, resolve

BOOLEAN = GraphQLNonNull(GraphQLBoolean)
DATETIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
Fields = dict[str, list[FieldNode]]


@dataclass
class Page:
    """Ordering and pagination of a list, checked as Prisma checks them."""

    order: list[tuple[str, str]]  # (column expression template "{a}.col", "ASC" | "DESC")
    where: dict[str, Any] | None
    skip: int
    first: int | None
    last: int | None
    after: Any
    before: Any

    @property
    def limit(self) -> int | None:
        return self.first if self.first is not None else self.last

    @property
    def reversed(self) -> bool:
        return self.last is not None


class ReadCompiler:
    """Compiles selections of one operation; holds what the compilation needs to look up."""

    def __init__(
        self,
        api: ApiSchema,
        graphql_schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: dict[str, Any],
        st: Statement,
    ) -> None:
        self.api = api
        self.graphql_schema = graphql_schema
        self.fragments = fragments
        self.variables = variables
        self.st = st

    # Selections ---------------------------------------------------------------------------

    def collect(self, selection_sets: list[SelectionSetNode], type_name: str) -> Fields:
        """Fields by response key, with fragments, `@skip` and `@include` applied.

        Each fragment is expanded once per collection, as the spec's CollectFields does
        (`visitedFragments`): spreading it again selects the same keys. Tracking only the
        fragments on the current path would expand `...F ...F` twice at every level, and a
        700-byte chain of such fragments would take the compiler seconds, doubling with each
        link."""
        fields: Fields = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect(selection_set, type_name, fields, visited)
        return fields

    def _collect(self, sel: SelectionSetNode, type_name: str, out: Fields, seen: set[str]) -> None:
        for node in sel.selections:
            if not self._included(node):
                continue
            if isinstance(node, FieldNode):
                key = node.alias.value if node.alias else node.name.value
                out.setdefault(key, []).append(node)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition.name.value if node.type_condition else None
                if self._applies(condition, type_name):
                    self._collect(node.selection_set, type_name, out, seen)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue
                seen.add(name)
                if self._applies(fragment.type_condition.name.value, type_name):
                    self._collect(fragment.selection_set, type_name, out, seen)

    def _applies(self, condition: str | None, type_name: str) -> bool:
        if condition is None or condition == type_name:
            return True
        t = self.graphql_schema.type_map.get(type_name)
        return isinstance(t, GraphQLObjectType) and any(i.name == condition for i in t.interfaces)

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            if directive.name.value not in ("skip", "include"):
                continue
            arg = next((a for a in directive.arguments if a.name.value == "if"), None)
            value = plain(resolve(arg.value, BOOLEAN, self.variables)) if arg else False
            if directive.name.value == "skip" and value:
                return False
            if directive.name.value == "include" and not value:
                return False
        return True

    def arguments(self, node: FieldNode, definition: GraphQLField) -> dict[str, Any]:
        given = {a.name.value: a for a in node.arguments or ()}
        values = {}
        for name, arg in definition.args.items():
            if name in given:
                values[name] = resolve(given[name].value, arg.type, self.variables)
        return values

    def sub_fields(self, nodes: list[FieldNode], type_name: str) -> Fields:
        return self.collect([n.selection_set for n in nodes if n.selection_set], type_name)

    # Objects ------------------------------------------------------------------------------

    def node_json(self, model: ApiModel, alias: str, fields: Fields) -> str:
        pairs = []
        definition = self.graphql_schema.type_map[model.name]
        assert isinstance(definition, GraphQLObjectType)
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                pairs.append((key, literal(model.name)))
                continue
            f = model.by_name[name]
            if f.is_relation:
                args = self.arguments(nodes[0], definition.fields[name])
                sub = self.sub_fields(nodes, f.type_name)
                pairs.append((key, self.relation_json(f, alias, args, sub)))
            else:
                pairs.append((key, scalar_json(self.st, f, alias)))
        return json_object(pairs)

    def relation_json(self, f: ApiField, parent: str, args: dict[str, Any], fields: Fields) -> str:
        target = f.target
        child = self.st.alias()
        link = related_condition(self.st, f, parent, child)
        if not f.is_list:
            body = self.node_json(target, child, fields)
            return (
                f"(SELECT {body} FROM {self.st.table(target)} {child} "  # noqa: S608
                f"WHERE {link} LIMIT 1)"
            )
        return self.list_json(target, child, args, fields, link)

    # Lists and connections ----------------------------------------------------------------

    def page(self, model: ApiModel, args: dict[str, Any]) -> Page:
        first, last, skip = (plain(args.get(k)) for k in ("first", "last", "skip"))
        if first is not None and last is not None:
            raise errors.both_first_and_last()
        for name, value in (("first", first), ("last", last), ("skip", skip)):
            if value is not None and value < 0:
                raise errors.negative(name)
        order_by = plain(args.get("orderBy"))
        id_col = "{a}." + ident(model.id_field.column)
        if order_by:
            name, direction = order_by.rsplit("_", 1)
            f = model.by_name[name]
            order = [("{a}." + ident(f.column), direction)]
            if not f.is_id:  # ties: id ascending in both directions, as Prisma orders them
                order.append((id_col, "ASC"))
        else:
            order = [(id_col, "ASC")]
        return Page(
            order, args.get("where"), skip or 0, first, last, args.get("after"), args.get("before")
        )

    def page_rows(
        self, model: ApiModel, alias: str, page: Page, columns: list[str], link: str, extra: int
    ) -> str:
        """The rows of one page (plus `extra` look-ahead rows), in the order of the query."""
        st = self.st
        conditions = [link, where_condition(st, model, alias, page.where)]
        for cursor, forward in ((page.after, True), (page.before, False)):
            if cursor is None:
                continue
            id_field = model.id_field

            def at_cursor(key: str, cursor: Any = cursor, id_field: ApiField = id_field) -> str:
                """The cursor row's value of one sort key (each use binds its own parameter)."""
                c = st.alias()
                p = st.param(cursor, int if id_field.type_name == "Int" else str)
                return (
                    f"(SELECT {key.format(a=c)} FROM {st.table(model)} {c} "  # noqa: S608
                    f"WHERE {column(c, id_field)} = {p})"
                )

            # Rows past the cursor in the page's order; the keys may run in different
            # directions (a DESC field, then the id ascending), so no row comparison.
            past = []
            for i, (key, direction) in enumerate(page.order):
                op = ">" if forward == (direction == "ASC") else "<"
                equal = [f"{k.format(a=alias)} = {at_cursor(k)}" for k, _ in page.order[:i]]
                past.append(" AND ".join([*equal, f"{key.format(a=alias)} {op} {at_cursor(key)}"]))
            conditions.append(_join_or(past))
        flip = {"ASC": "DESC", "DESC": "ASC"}
        order = ", ".join(
            f"{o.format(a=alias)} {flip[d] if page.reversed else d}" for o, d in page.order
        )
        sort_columns = [f"{o.format(a=alias)} AS o{i}" for i, (o, _) in enumerate(page.order)]
        limit = "" if page.limit is None else f" LIMIT {page.limit + extra}"
        offset = f" OFFSET {page.skip}" if page.skip else ""
        return (
            f"SELECT {', '.join(columns + sort_columns)} FROM {st.table(model)} {alias} "  # noqa: S608
            f"WHERE {' AND '.join(conditions)} ORDER BY {order}{limit}{offset}"
        )

    @staticmethod
    def forward_order(page: Page, alias: str, *, backwards: bool = False) -> str:
        flip = {"ASC": "DESC", "DESC": "ASC"}
        return ", ".join(
            f"{alias}.o{i} {flip[d] if backwards else d}" for i, (_, d) in enumerate(page.order)
        )

    def list_json(
        self, model: ApiModel, alias: str, args: dict[str, Any], fields: Fields, link: str = "TRUE"
    ) -> str:
        page = self.page(model, args)
        rows = self.page_rows(
            model, alias, page, [f"{self.node_json(model, alias, fields)} AS j"], link, 0
        )
        p = self.st.alias()
        return (
            f"(SELECT COALESCE(json_agg({p}.j ORDER BY {self.forward_order(page, p)}), '[]'::json) "  # noqa: S608
            f"FROM ({rows}) {p})"
        )

    def connection_json(
        self, model: ApiModel, alias: str, args: dict[str, Any], fields: Fields, link: str = "TRUE"
    ) -> str:
        page = self.page(model, args)
        p = self.st.alias()
        columns = [f"{column(alias, model.id_field)}::text AS c"]
        in_page = "TRUE" if page.limit is None else f"{p}.rn <= {page.limit}"
        forward = self.forward_order(page, p)
        pairs = []
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "__typename":
                pairs.append((key, literal(f"{model.name}Connection")))
            elif name == "aggregate":
                sub = self.sub_fields(nodes, f"Aggregate{model.name}")
                pairs.append((key, json_object([
                    (k, literal(f"Aggregate{model.name}") if n[0].name.value == "__typename"
                     else f"count(*) FILTER (WHERE {in_page})")
                    for k, n in sub.items()
                ])))  # fmt: skip
            elif name == "pageInfo":
                pairs.append(
                    (key, self._page_info(page, p, in_page, self.sub_fields(nodes, "PageInfo")))
                )
            elif name == "edges":
                edge_pairs = []
                for edge_key, edge_nodes in self.sub_fields(nodes, f"{model.name}Edge").items():
                    edge_name = edge_nodes[0].name.value
                    if edge_name == "__typename":
                        edge_pairs.append((edge_key, literal(f"{model.name}Edge")))
                    elif edge_name == "cursor":
                        edge_pairs.append((edge_key, f"{p}.c"))
                    else:
                        index = len(columns)
                        node_fields = self.sub_fields(edge_nodes, model.name)
                        columns.append(f"{self.node_json(model, alias, node_fields)} AS j{index}")
                        edge_pairs.append((edge_key, f"{p}.j{index}"))
                edges = json_object(edge_pairs)
                pairs.append(
                    (
                        key,
                        f"COALESCE(json_agg({edges} ORDER BY {forward}) "
                        f"FILTER (WHERE {in_page}), '[]'::json)",
                    )
                )
        extra = 0 if page.limit is None else 1
        rows = self.page_rows(model, alias, page, columns, link, extra)
        q = self.st.alias()
        query_order = self.forward_order(page, q, backwards=page.reversed)
        numbered = (
            f"SELECT {q}.*, row_number() OVER (ORDER BY {query_order}) AS rn "  # noqa: S608
            f"FROM ({rows}) {q}"
        )
        return f"(SELECT {json_object(pairs)} FROM ({numbered}) {p})"  # noqa: S608

    def _page_info(self, page: Page, p: str, in_page: str, fields: Fields) -> str:
        more = "FALSE" if page.limit is None else f"count(*) > {page.limit}"
        pairs = []
        for key, nodes in fields.items():
            name = nodes[0].name.value
            if name == "hasNextPage":
                pairs.append((key, more if page.first is not None else "FALSE"))
            elif name == "hasPreviousPage":
                pairs.append((key, more if page.last is not None else "FALSE"))
            elif name == "startCursor":
                pairs.append(
                    (
                        key,
                        f"(array_agg({p}.c ORDER BY {self.forward_order(page, p)}) "
                        f"FILTER (WHERE {in_page}))[1]",
                    )
                )
            elif name == "endCursor":
                order = self.forward_order(page, p, backwards=True)
                pairs.append(
                    (key, f"(array_agg({p}.c ORDER BY {order}) FILTER (WHERE {in_page}))[1]")
                )
            else:
                pairs.append((key, literal("PageInfo")))
        return json_object(pairs)


def scalar_json(st: Statement, f: ApiField, alias: str) -> str:
    """The JSON value of a scalar field (a sub-select for scalar lists)."""
    if f.is_list:
        item = st.alias()
        value = _scalar_value(f, f'{item}."value"')
        return (
            f'COALESCE((SELECT json_agg({value} ORDER BY {item}."position") '  # noqa: S608
            f"FROM {st.named_table(f.list_table)} {item} "
            f"WHERE {item}.\"nodeId\" = {column(alias, f.model.id_field)}), '[]'::json)"
        )
    return _scalar_value(f, column(alias, f))


def _scalar_value(f: ApiField, expression: str) -> str:
    if f.type_name == "DateTime":
        return f"to_char({expression}, '{DATETIME_FORMAT}')"
    if f.type_name == "Float":
        return f"{expression}::float8"
    if f.type_name == "Json":
        return f"{expression}::json"
    return expression


def _join_or(conditions: list[str]) -> str:
    return (
        conditions[0]
        if len(conditions) == 1
        else "(" + " OR ".join(f"({c})" for c in conditions) + ")"
    )
