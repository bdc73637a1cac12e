"""Import and export in Prisma's Normalized Data Format, and `resetData` (reference section 8).

A service's data travels as three kinds of JSON values: nodes (one per row, scalar fields),
lists (a node's scalar-list values) and relations (pairs of `{_typeName, id, fieldName}`).
Export pages through tables with a cursor `{table, row, field, array}` so that a client can fetch
any amount of data in bounded answers. These are bulk paths: they read and write the tables
directly, with no GraphQL in between, and are never throttled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import Connection, sql

from runtime.datamodel.schema import Field, Model, Relation, Schema
from runtime.ids import cuid
from runtime.names import scalar_list_table

PAGE_ROWS = 1000
PAGE_CHARS = 1_000_000
LIST_POSITION_STEP = 1000
DONE = {"table": -1, "row": -1, "field": -1, "array": -1}
FILE_TYPES = ("nodes", "lists", "relations")


class NdfError(Exception):
    """A request the bulk endpoints cannot serve; the message is shown to the caller."""


def _table(schema_name: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema_name), sql.Identifier(table))


def _scalars(model: Model) -> list[Field]:
    return [f for f in model.fields if f.kind != "relation" and not f.is_list]


def _lists(model: Model) -> list[Field]:
    return [f for f in model.fields if f.is_scalar_list]


def _to_json(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.type_name == "DateTime" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if f.type_name == "Json" and f.kind != "enum":
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _from_json(f: Field, value: Any) -> Any:
    if value is None:
        return None
    if f.type_name == "Json" and f.kind != "enum":
        return json.dumps(value)
    if f.type_name == "DateTime":
        if not isinstance(value, str):
            raise NdfError(f"'{f.name}' needs a DateTime string, not {value!r}")
        return (
            datetime.fromisoformat(value.replace("Z", "+00:00"))
            .astimezone(UTC)
            .replace(tzinfo=None)
        )
    return value


# Export ---------------------------------------------------------------------------------


@dataclass
class _Page:
    elements: list[Any]
    size: int = 0

    def add(self, element: Any) -> None:
        self.elements.append(element)
        self.size += len(json.dumps(element, separators=(",", ":")))

    @property
    def full(self) -> bool:
        return self.size > PAGE_CHARS


def export_page(
    conn: Connection, schema_name: str, schema: Schema, file_type: str, cursor: dict | None
) -> dict[str, Any]:
    """One page of the export: `{"out": {"jsonElements", "size"}, "cursor", "isFull"}`."""
    if file_type not in FILE_TYPES:
        raise NdfError(f"fileType must be one of {', '.join(FILE_TYPES)}, not {file_type!r}")
    cursor = cursor or {}
    try:
        table, row = int(cursor.get("table", 0)), int(cursor.get("row", 0))
    except (TypeError, ValueError):
        raise NdfError("cursor.table and cursor.row must be integers") from None
    sources = _sources(schema, file_type)
    page = _Page([])
    while 0 <= table < len(sources) and not page.full:
        rows = sources[table](conn, schema_name, row)
        for element in rows:
            page.add(element)
        if len(rows) < PAGE_ROWS:
            table, row = table + 1, 0
        else:
            row += PAGE_ROWS
    done = table < 0 or table >= len(sources)
    return {
        "out": {"jsonElements": page.elements, "size": page.size},
        "cursor": DONE if done else {"table": table, "row": row, "field": 0, "array": 0},
        "isFull": page.full,
    }


def _sources(schema: Schema, file_type: str) -> list:
    """Readers of one page (PAGE_ROWS rows from an offset) per table, in a stable order."""
    if file_type == "nodes":
        return [_node_reader(m) for m in schema.models]
    if file_type == "lists":
        return [_list_reader(m, f) for m in schema.models for f in _lists(m)]
    return [_relation_reader(schema, r) for r in schema.relations]


def _node_reader(model: Model):
    fields = _scalars(model)
    id_column = model.id_field.column

    def read(conn: Connection, schema_name: str, offset: int) -> list[dict]:
        query = sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %s OFFSET %s").format(
            sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
            _table(schema_name, model.table),
            sql.Identifier(id_column),
        )
        elements = []
        for values in conn.execute(query, [PAGE_ROWS, offset]).fetchall():
            element: dict[str, Any] = {"_typeName": model.name}
            for f, value in zip(fields, values, strict=True):
                if value is not None:
                    element[f.name] = _to_json(f, value)
            elements.append(element)
        return elements

    return read


def _list_reader(model: Model, f: Field):
    def read(conn: Connection, schema_name: str, offset: int) -> list[dict]:
        query = sql.SQL(
            'SELECT "nodeId", array_agg("value" ORDER BY "position") FROM {} '
            'GROUP BY "nodeId" ORDER BY "nodeId" LIMIT %s OFFSET %s'
        ).format(_table(schema_name, scalar_list_table(model, f)))
        return [
            {"_typeName": model.name, "id": node_id, f.name: [_to_json(f, v) for v in values]}
            for node_id, values in conn.execute(query, [PAGE_ROWS, offset]).fetchall()
        ]

    return read


@dataclass(frozen=True)
class _Side:
    model: Model
    field_name: str | None

    def ref(self, node_id: Any) -> dict[str, Any]:
        ref: dict[str, Any] = {"_typeName": self.model.name, "id": node_id}
        if self.field_name:
            ref["fieldName"] = self.field_name
        return ref


def _relation_sides(schema: Schema, relation: Relation) -> tuple[_Side, _Side]:
    """(holder side, other side) for inline relations; (A side, B side) for link tables."""
    model_a, model_b = schema.model(relation.model_a), schema.model(relation.model_b)
    if model_a is None or model_b is None:
        raise NdfError(f"relation {relation.name} names a missing model")
    side_a, side_b = _Side(model_a, relation.field_a), _Side(model_b, relation.field_b)
    if relation.link == "TABLE":
        return side_a, side_b
    holder = schema.model(relation.inline_model or "")
    holder_field = next(
        (
            f.name
            for f in (holder.fields if holder else ())
            if f.relation_name == relation.name and f.column == relation.inline_column
        ),
        None,
    )
    if holder is None or holder_field is None:
        raise NdfError(f"relation {relation.name} has no inline field")
    if holder.name == model_a.name and holder_field == relation.field_a:
        return side_a, side_b
    return side_b, side_a


def _relation_reader(schema: Schema, relation: Relation):
    first, second = _relation_sides(schema, relation)

    def read(conn: Connection, schema_name: str, offset: int) -> list[list[dict]]:
        if relation.link == "TABLE":
            a, b = sql.Identifier(relation.column_a), sql.Identifier(relation.column_b)
            query = sql.SQL("SELECT {}, {} FROM {} ORDER BY {}, {} LIMIT %s OFFSET %s").format(
                a, b, _table(schema_name, relation.table), a, b
            )
        else:
            id_column = sql.Identifier(first.model.id_field.column)
            column = sql.Identifier(relation.inline_column or "")
            query = sql.SQL(
                "SELECT {}, {} FROM {} WHERE {} IS NOT NULL ORDER BY {} LIMIT %s OFFSET %s"
            ).format(id_column, column, _table(schema_name, first.model.table), column, id_column)
        return [
            [first.ref(left), second.ref(right)]
            for left, right in conn.execute(query, [PAGE_ROWS, offset]).fetchall()
        ]

    return read


# Import ---------------------------------------------------------------------------------


def import_values(
    conn: Connection,
    schema_name: str,
    schema: Schema,
    value_type: str,
    values: Any,
    before_commit: Callable[[Connection], None] | None = None,
) -> list[str]:
    """Write the values; answer the errors as strings (`[]` when all went in).

    Each value goes in under its own savepoint, so one bad value is reported and skipped while
    the others land, as Prisma's bulk import does. `before_commit` runs inside the transaction
    after the writes (the storage cap's check); what it raises rolls the whole import back.
    """
    if value_type not in FILE_TYPES:
        raise NdfError(f"valueType must be one of {', '.join(FILE_TYPES)}, not {value_type!r}")
    if not isinstance(values, list):
        raise NdfError("values must be a JSON array")
    write = {"nodes": _import_node, "lists": _import_list, "relations": _import_relation}[
        value_type
    ]
    errors = []
    with conn.transaction():
        for index, value in enumerate(values):
            try:
                with conn.transaction():
                    write(conn, schema_name, schema, value)
            except (NdfError, psycopg.Error, ValueError) as exc:
                message = exc.diag.message_primary if isinstance(exc, psycopg.Error) else str(exc)
                errors.append(f"Failure inserting {value_type} value {index}: {message}")
        if before_commit is not None:
            before_commit(conn)
    return errors


def _model_of(schema: Schema, value: Any) -> Model:
    if not isinstance(value, dict):
        raise NdfError("each value must be a JSON object")
    model = schema.model(str(value.get("_typeName", "")))
    if model is None:
        raise NdfError(f"unknown _typeName {value.get('_typeName')!r}")
    return model


def _import_node(conn: Connection, schema_name: str, schema: Schema, value: Any) -> None:
    model = _model_of(schema, value)
    fields = {f.name: f for f in _scalars(model)}
    unknown = [key for key in value if key != "_typeName" and key not in fields]
    if unknown:
        raise NdfError(f"{model.name} has no scalar field {unknown[0]!r}")
    row: dict[str, Any] = {}
    id_field = model.id_field
    row[id_field.column] = value.get(id_field.name) or (
        cuid() if id_field.type_name == "ID" else None
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    for f in fields.values():
        if f.is_id:
            continue
        if f.name in value:
            row[f.column] = _from_json(f, value[f.name])
        elif f.behaviour in ("createdAt", "updatedAt"):
            row[f.column] = now
        elif f.default is not None:
            row[f.column] = f.default  # PostgreSQL casts the text to the column's type
    row = {column: v for column, v in row.items() if v is not None}
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            _table(schema_name, model.table),
            sql.SQL(", ").join(sql.Identifier(c) for c in row),
            sql.SQL(", ").join(sql.Placeholder() for _ in row),
        ),
        list(row.values()),
    )


def _import_list(conn: Connection, schema_name: str, schema: Schema, value: Any) -> None:
    model = _model_of(schema, value)
    node_id = value.get("id")
    if node_id is None:
        raise NdfError(f"a {model.name} list value needs the node's id")
    for name, items in value.items():
        if name in ("_typeName", "id"):
            continue
        f = model.field(name)
        if f is None or not f.is_scalar_list:
            raise NdfError(f"{model.name} has no scalar list field {name!r}")
        if not isinstance(items, list):
            raise NdfError(f"'{name}' must be a JSON array")
        table = _table(schema_name, scalar_list_table(model, f))
        start = conn.execute(
            sql.SQL('SELECT coalesce(max("position"), 0) FROM {} WHERE "nodeId" = %s').format(
                table
            ),
            [node_id],
        ).fetchone()[0]
        for offset, item in enumerate(items, start=1):
            conn.execute(
                sql.SQL(
                    'INSERT INTO {} ("nodeId", "position", "value") VALUES (%s, %s, %s)'
                ).format(table),
                [node_id, start + offset * LIST_POSITION_STEP, _from_json(f, item)],
            )


def _import_relation(conn: Connection, schema_name: str, schema: Schema, value: Any) -> None:
    if not isinstance(value, list) or len(value) != 2:
        raise NdfError("a relation value is a pair of {_typeName, id, fieldName} objects")
    left, right = (_model_of(schema, side) for side in value)
    relation = _relation_of(schema, left, value[0]) or _relation_of(schema, right, value[1])
    if relation is None:
        raise NdfError("neither side names a relation field with fieldName")
    first, second = _relation_sides(schema, relation)

    def matches(side: _Side, model: Model, given: dict) -> bool:
        name = given.get("fieldName")
        return side.model.name == model.name and (
            name is None or side.field_name is None or name == side.field_name
        )

    if matches(first, left, value[0]) and matches(second, right, value[1]):
        first_id, second_id = value[0].get("id"), value[1].get("id")
    elif matches(first, right, value[1]) and matches(second, left, value[0]):
        first_id, second_id = value[1].get("id"), value[0].get("id")
    else:
        raise NdfError(f"the pair does not match the sides of relation {relation.name}")
    if relation.link == "TABLE":
        conn.execute(
            sql.SQL("INSERT INTO {} ({}, {}) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
                _table(schema_name, relation.table),
                sql.Identifier(relation.column_a),
                sql.Identifier(relation.column_b),
            ),
            [first_id, second_id],
        )
        return
    updated = conn.execute(
        sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(
            _table(schema_name, first.model.table),
            sql.Identifier(relation.inline_column or ""),
            sql.Identifier(first.model.id_field.column),
        ),
        [second_id, first_id],
    )
    if updated.rowcount != 1:
        raise NdfError(f"no {first.model.name} with id {first_id!r}")


def _relation_of(schema: Schema, model: Model, side: dict) -> Relation | None:
    f = model.field(str(side.get("fieldName", "")))
    if f is None or f.kind != "relation" or f.relation_name is None:
        return None
    return schema.relation(f.relation_name)


# Reset ----------------------------------------------------------------------------------


def reset_data(conn: Connection, schema_name: str) -> None:
    """`resetData`: empty every table of the service, keeping the tables themselves."""
    tables = [
        row[0]
        for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema_name]
        ).fetchall()
    ]
    if tables:
        conn.execute(
            sql.SQL("TRUNCATE {} CASCADE").format(
                sql.SQL(", ").join(_table(schema_name, t) for t in tables)
            )
        )


# Requests -------------------------------------------------------------------------------


def export_request(conn: Connection, schema_name: str, schema: Schema, payload: Any) -> dict:
    """`POST .../export` with `{"fileType", "cursor"}`."""
    if not isinstance(payload, dict):
        raise NdfError('send {"fileType": "nodes" | "lists" | "relations", "cursor": {...}}')
    cursor = payload.get("cursor")
    if cursor is not None and not isinstance(cursor, dict):
        raise NdfError("cursor must be an object like {table, row, field, array}")
    return export_page(conn, schema_name, schema, str(payload.get("fileType")), cursor)


def import_request(
    conn: Connection,
    schema_name: str,
    schema: Schema,
    payload: Any,
    before_commit: Callable[[Connection], None] | None = None,
) -> list:
    """`POST .../import` with `{"valueType", "values"}`; answers the list of errors."""
    if not isinstance(payload, dict):
        raise NdfError('send {"valueType": "nodes" | "lists" | "relations", "values": [...]}')
    return import_values(
        conn,
        schema_name,
        schema,
        str(payload.get("valueType")),
        payload.get("values"),
        before_commit,
    )
