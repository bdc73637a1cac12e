"""Row-level writes of mutations: nodes, scalar lists, links, cascades, required relations.

Relations are written where reference 7 stores them (a column on either table, or the link
table). Whenever a node loses a link it is remembered; at the end of each root mutation every
such node that still exists must still have its required to-one relations, else the mutation
fails with 3042 and its savepoint is rolled back. Checking after the writes, instead of
predicting every path in advance, keeps nested operations simple and exact.
"""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from runtime.ids import cuid
from runtime.names import ident, in_service_schema
from runtime.opencrud import errors
from runtime.opencrud.filters import where_condition
from runtime.opencrud.model import ApiField, ApiModel, ApiSchema
from runtime.opencrud.roots import where_unique_field
from runtime.opencrud.statement import Statement, array_type
from runtime.opencrud.steps import Result, Sql, Steps
from runtime.opencrud.values import converter, to_datetime, to_json_text
from runtime.subscriptions import events

MAX_ID_LENGTH = 25
# A bound of what a write statement can add to the service's files (heap, TOAST, indexes), for
# the storage cap (see `Writer.growth`). An inserted row: its values, again for each index that
# can hold them, its header and index entries. An updated row: a new version of the old row,
# whose inline part is at most a page (large values stay in TOAST unless rewritten), plus the
# new values and index entries. Each statement may also start a new page in each relation.
INSERT_ROW_BYTES = 1024
UPDATE_ROW_BYTES = 16 * 1024
STATEMENT_PAGES_BYTES = 32 * 1024
VALUE_COPIES = 3
INSERTS_KEPT = 4096  # INSERT texts kept by model and columns (`Writer._insert_text`)
_INSERTS: dict[tuple[str, str, tuple[str, ...]], str] = {}


def write_value(f: ApiField, value: Any) -> Any:
    """A scalar input as the column stores it (3020, 3007 and 3037 on bad values)."""
    if value is None:
        if f.is_required:
            raise errors.required_field_null(f.name)
        return None
    if f.is_list:
        return [write_value_item(f, v) for v in value]
    return write_value_item(f, value)


def write_value_item(f: ApiField, value: Any) -> Any:
    if f.type_name == "ID" and len(str(value)) > MAX_ID_LENGTH:
        raise errors.value_too_long(f.name)
    return converter(f.type_name, f.name)(value)


def default_value(f: ApiField) -> Any:
    text = f.field.default
    if text is None:
        return None
    if f.type_name == "Boolean":
        return text == "true"
    if f.type_name == "Int":
        return int(text)
    if f.type_name == "Float":
        return float(text)
    if f.type_name == "DateTime":
        return to_datetime(text, f.name)
    if f.type_name == "Json":
        return to_json_text(text, f.name)
    return text


class Writer:
    """The writes of one request, on one connection, inside its transaction."""

    def __init__(self, api: ApiSchema, publishes: bool = False, defers: bool = False) -> None:
        self.api = api
        # Whether a row's INSERT may be sent with the statement after it (`steps.Sql.assumed`):
        # the caller then takes its failure wherever the next statement is yielded.
        self.defers = defers
        self.touched: set[tuple[str, Any]] = set()
        # The subscription events of the request (`runtime.subscriptions.events`), when its
        # service's events are published; None otherwise (nothing is captured then).
        self.events: list[dict[str, Any]] | None = [] if publishes else None
        # What the writes so far can have added to the service's files, at most (bytes).
        self.growth = 0

    @functools.cached_property
    def now(self) -> datetime:
        """The request's time (UTC, to the millisecond), for `createdAt` and `updatedAt`: read
        once, when a write first needs it."""
        now = datetime.now(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000, tzinfo=None)

    def table(self, model: ApiModel) -> str:
        return in_service_schema(model.table)

    def run(
        self, query: str, params: list[Any] | tuple[Any, ...] = (), assumed: Result | None = None
    ) -> Steps[Result]:
        result = yield Sql(query, params, assumed=assumed)
        if query.startswith(("INSERT", "UPDATE")):
            self._grew(query, [params], max(result.rowcount, 0))
        return result

    def run_many(self, query: str, params: list[tuple[Any, ...]]) -> Steps[Result]:
        """One statement per parameter list (an INSERT of many rows)."""
        result = yield Sql(query, params, many=True)
        self._grew(query, params, len(params))
        return result

    def _grew(self, query: str, params: list[Any], rows: int) -> None:
        """Add a statement's bound to `growth`: per row, its values (`VALUE_COPIES` times:
        heap or TOAST, and index copies) and the row's fixed cost, plus the pages the statement
        may start. The id arrays of `= ANY(%s)` conditions are not written and do not count."""
        if rows == 0:
            return
        per_row = INSERT_ROW_BYTES if query.startswith("INSERT") else UPDATE_ROW_BYTES
        values = sum(_value_bytes(p) for each in params for p in each if not isinstance(p, list))
        if len(params) > 1:  # executemany: each parameter list is one row
            self.growth += rows * per_row + VALUE_COPIES * values + STATEMENT_PAGES_BYTES
        else:  # one statement's values are written into each row it touches
            self.growth += rows * (per_row + VALUE_COPIES * values) + STATEMENT_PAGES_BYTES

    # Lookups ------------------------------------------------------------------------------

    def find_unique(self, model: ApiModel, where: dict[str, Any] | None) -> Steps[Any]:
        f, value = where_unique_field(model, where)
        value = write_value_item(f, value) if f.type_name != "ID" else str(value)
        row = (
            yield from self.run(
                f"SELECT {ident(model.id_field.column)} FROM {self.table(model)} "  # noqa: S608
                f"WHERE {ident(f.column)} = %s",
                [value],
            )
        ).one()
        return row[0] if row else None

    def require_unique(self, model: ApiModel, where: dict[str, Any] | None) -> Steps[Any]:
        node_id = yield from self.find_unique(model, where)
        if node_id is None:
            f, value = where_unique_field(model, where)
            raise errors.node_not_found(model.name, f.name, value)
        return node_id

    def require_unique_before_write(
        self, model: ApiModel, where: dict[str, Any] | None
    ) -> Steps[tuple[Any, dict[str, Any] | None]]:
        """`require_unique` for a node about to be updated or deleted, with its values for the
        subscription event read in the same statement (None when events are not published)."""
        if self.events is None:
            return (yield from self.require_unique(model, where)), None
        f, value = where_unique_field(model, where)
        key = write_value_item(f, value) if f.type_name != "ID" else str(value)
        row = (yield from self.run(events.previous_values_query(model, f), [key])).one()
        if row is None:
            raise errors.node_not_found(model.name, f.name, value)
        return row[0], json.loads(row[1])

    def ids_where(
        self, model: ApiModel, where: dict[str, Any] | None, among: list[Any] | None = None
    ) -> Steps[list[Any]]:
        st = Statement()
        condition = where_condition(st, model, "t", where)
        id_col = f"t.{ident(model.id_field.column)}"
        params = st.bind({})
        if among is not None:
            if not among:
                return []
            condition += f" AND {id_col} = ANY(%s::{array_type(model.id_field)})"
            params.append(list(among))
        rows = (
            yield from self.run(
                f"SELECT {id_col} FROM {st.table(model)} t WHERE {condition} ORDER BY {id_col}",  # noqa: S608
                params,
            )
        ).rows
        return [r[0] for r in rows]

    def exists(self, model: ApiModel, node_id: Any) -> Steps[bool]:
        row = (
            yield from self.run(
                f"SELECT 1 FROM {self.table(model)} WHERE {ident(model.id_field.column)} = %s",  # noqa: S608
                [node_id],
            )
        ).one()
        return row is not None

    def related_ids(self, f: ApiField, parent_id: Any) -> Steps[list[Any]]:
        target = f.target
        if f.is_inline_here:
            rows = (
                yield from self.run(
                    f"SELECT {ident(f.inline_column)} FROM {self.table(f.model)} "  # noqa: S608
                    f"WHERE {ident(f.model.id_field.column)} = %s "
                    f"AND {ident(f.inline_column)} IS NOT NULL",
                    [parent_id],
                )
            ).rows
        elif f.is_inline_there:
            rows = (
                yield from self.run(
                    f"SELECT {ident(target.id_field.column)} FROM {self.table(target)} "  # noqa: S608
                    f"WHERE {ident(f.inline_column)} = %s",
                    [parent_id],
                )
            ).rows
        else:
            mine, theirs = f.link_columns
            rows = (
                yield from self.run(
                    f"SELECT {ident(theirs)} FROM {self.link_table(f)} WHERE {ident(mine)} = %s",  # noqa: S608
                    [parent_id],
                )
            ).rows
        return [r[0] for r in rows]

    def holders(self, f: ApiField, child_id: Any) -> Steps[list[Any]]:
        """The nodes whose relation field `f` holds `child_id` (`related_ids` backwards)."""
        holder = f.model
        if f.is_inline_here:
            query = (
                f"SELECT {ident(holder.id_field.column)} FROM {self.table(holder)} "  # noqa: S608
                f"WHERE {ident(f.inline_column)} = %s"
            )
        elif f.is_inline_there:
            query = (
                f"SELECT {ident(f.inline_column)} FROM {self.table(f.target)} "  # noqa: S608
                f"WHERE {ident(f.target.id_field.column)} = %s "
                f"AND {ident(f.inline_column)} IS NOT NULL"
            )
        else:
            mine, theirs = f.link_columns
            query = f"SELECT {ident(mine)} FROM {self.link_table(f)} WHERE {ident(theirs)} = %s"  # noqa: S608
        return [r[0] for r in (yield from self.run(query, [child_id])).rows]

    def link_table(self, f: ApiField) -> str:
        assert f.relation is not None
        return in_service_schema(f.relation.table)

    # Nodes --------------------------------------------------------------------------------

    def insert_node(self, model: ApiModel, data: dict[str, Any]) -> Steps[Any]:
        """Insert a node's row and scalar lists; relations are linked by the caller."""
        values: dict[str, Any] = {}
        lists: dict[ApiField, list[Any]] = {}
        for f in model.scalar_fields:
            if f.is_created_at or f.is_updated_at:
                values[f.column] = self.now
            elif f.is_list:
                if data.get(f.name) is not None:
                    lists[f] = write_value(f, (data[f.name] or {}).get("set") or [])
            elif f.name in data:
                if data[f.name] is None and f.is_required and f.field.default is not None:
                    raise errors.input_invalid("null", f.name, model.name)
                values[f.column] = write_value(f, data[f.name])
            elif f.is_id:
                if f.type_name == "ID":
                    values[f.column] = cuid()
                elif f.type_name == "UUID":
                    values[f.column] = str(uuid.uuid4())
            elif f.field.default is not None:
                values[f.column] = default_value(f)
        query = self._insert_text(model, tuple(values))
        known = values.get(model.id_field.column) if model.id_field.type_name == "ID" else None
        # An id string the request made or was given is the one RETURNING would give.
        assumed = Result([(known,)], 1) if self.defers and isinstance(known, str) else None
        node_id = (yield from self.run(query, list(values.values()), assumed)).one()[0]
        for f, items in lists.items():
            yield from self.set_list(f, node_id, items)
        self.touched.add((model.name, node_id))
        if self.events is not None:
            self.events.append(events.created(model, node_id))
        return node_id

    def _insert_text(self, model: ApiModel, columns: tuple[str, ...]) -> str:
        """The INSERT of a row with these columns, made once per model and columns: the same
        text object request after request (hashed once where statements are cached)."""
        key = (model.table, model.id_field.column, columns)
        query = _INSERTS.get(key)
        if query is None:
            id_col = ident(model.id_field.column)
            if columns:
                query = (
                    f"INSERT INTO {self.table(model)} ({', '.join(map(ident, columns))}) "  # noqa: S608
                    f"VALUES ({', '.join('%s' for _ in columns)}) RETURNING {id_col}"
                )
            else:
                query = f"INSERT INTO {self.table(model)} DEFAULT VALUES RETURNING {id_col}"  # noqa: S608
            if len(_INSERTS) >= INSERTS_KEPT:
                _INSERTS.clear()
            _INSERTS[key] = query
        return query

    def previous_values(self, model: ApiModel, node_id: Any) -> Steps[dict[str, Any] | None]:
        """The node's scalar values before a write, for its subscription event (None when its
        events are not published)."""
        if self.events is None:
            return None
        query = events.previous_values_query(model)
        row = (yield from self.run(query, [node_id])).one()
        return json.loads(row[1]) if row else None

    def update_scalars(self, model: ApiModel, ids: list[Any], data: dict[str, Any]) -> Steps[None]:
        """Scalar fields and scalar lists of `data` on every node of `ids`, plus `@updatedAt`."""
        if not ids:
            return
        assignments: list[tuple[str, Any]] = []
        lists: dict[ApiField, list[Any]] = {}
        for f in model.scalar_fields:
            if f.is_updated_at:
                assignments.append((f.column, self.now))
            elif f.name not in data or f.is_read_only:
                continue
            elif f.is_list:
                lists[f] = write_value(f, (data[f.name] or {}).get("set") or [])
            else:
                assignments.append((f.column, write_value(f, data[f.name])))
        if assignments:
            sets = ", ".join(f"{ident(c)} = %s" for c, _ in assignments)
            yield from self.run(
                f"UPDATE {self.table(model)} SET {sets} "  # noqa: S608
                f"WHERE {ident(model.id_field.column)} = ANY(%s::{array_type(model.id_field)})",
                [*(v for _, v in assignments), list(ids)],
            )
        for f, items in lists.items():
            for node_id in ids:
                yield from self.set_list(f, node_id, items)

    def set_list(self, f: ApiField, node_id: Any, items: list[Any]) -> Steps[None]:
        """Scalar lists are replaced wholesale, positions 1000, 2000, ... (reference 7)."""
        table = in_service_schema(f.list_table)
        yield from self.run(f'DELETE FROM {table} WHERE "nodeId" = %s', [node_id])  # noqa: S608
        if items:
            yield from self.run_many(
                f'INSERT INTO {table} ("nodeId", "position", "value") VALUES (%s, %s, %s)',  # noqa: S608
                [(node_id, (i + 1) * 1000, v) for i, v in enumerate(items)],
            )

    def delete_node(
        self, model: ApiModel, node_id: Any, seen: set[tuple[str, Any]] | None = None
    ) -> Steps[None]:
        """Delete a node, first the nodes its `onDelete: CASCADE` relations hold."""
        seen = set() if seen is None else seen
        if (model.name, node_id) in seen:
            return
        seen.add((model.name, node_id))
        for f in model.relation_fields:
            children = yield from self.related_ids(f, node_id)
            for child in children:
                if f.field.on_delete == "CASCADE":
                    yield from self.delete_node(f.target, child, seen)
                else:
                    self.touched.add((f.target.name, child))
        # Relations without a field on this side (Prisma's `fieldsWhereThisModelIsRequired`
        # includes them): the nodes pointing at this one lose their link too.
        for f in self.api.one_sided_to(model):
            for holder in (yield from self.holders(f, node_id)):
                self.touched.add((f.model.name, holder))
        yield from self.run(
            f"DELETE FROM {self.table(model)} WHERE {ident(model.id_field.column)} = %s",  # noqa: S608
            [node_id],
        )

    # Links --------------------------------------------------------------------------------

    def link(self, f: ApiField, parent_id: Any, child_id: Any) -> Steps[None]:
        """Connect `child_id` to `parent_id` through `f`, replacing links a to-one side had."""
        target = f.target
        back_is_one = f.related is not None and not f.related.is_list
        if f.is_inline_here:
            holder, fk, pid = (
                self.table(f.model),
                ident(f.inline_column),
                ident(f.model.id_field.column),
            )
            if back_is_one:
                cleared = yield from self.run(
                    f"UPDATE {holder} SET {fk} = NULL "  # noqa: S608
                    f"WHERE {fk} = %s AND {pid} <> %s RETURNING {pid}",
                    [child_id, parent_id],
                )
                self.touched.update((f.model.name, row[0]) for row in cleared.rows)
            for old in (yield from self.related_ids(f, parent_id)):
                if old != child_id:
                    self.touched.add((target.name, old))
            set_link = f"UPDATE {holder} SET {fk} = %s WHERE {pid} = %s"  # noqa: S608
            yield from self.run(set_link, [child_id, parent_id])
        elif f.is_inline_there:
            holder, fk, cid = (
                self.table(target),
                ident(f.inline_column),
                ident(target.id_field.column),
            )
            if not f.is_list:
                cleared = yield from self.run(
                    f"UPDATE {holder} SET {fk} = NULL "  # noqa: S608
                    f"WHERE {fk} = %s AND {cid} <> %s RETURNING {cid}",
                    [parent_id, child_id],
                )
                self.touched.update((target.name, row[0]) for row in cleared.rows)
            previous = f"SELECT {fk} FROM {holder} WHERE {cid} = %s"  # noqa: S608
            row = (yield from self.run(previous, [child_id])).one()
            if row and row[0] is not None and row[0] != parent_id:
                self.touched.add((f.model.name, row[0]))
            set_link = f"UPDATE {holder} SET {fk} = %s WHERE {cid} = %s"  # noqa: S608
            yield from self.run(set_link, [parent_id, child_id])
        else:
            link = self.link_table(f)
            mine, theirs = (ident(c) for c in f.link_columns)
            if not f.is_list:
                cleared = yield from self.run(
                    f"DELETE FROM {link} "  # noqa: S608
                    f"WHERE {mine} = %s AND {theirs} <> %s RETURNING {theirs}",
                    [parent_id, child_id],
                )
                self.touched.update((target.name, row[0]) for row in cleared.rows)
            if back_is_one:
                cleared = yield from self.run(
                    f"DELETE FROM {link} "  # noqa: S608
                    f"WHERE {theirs} = %s AND {mine} <> %s RETURNING {mine}",
                    [child_id, parent_id],
                )
                self.touched.update((f.model.name, row[0]) for row in cleared.rows)
            yield from self.run(
                f"INSERT INTO {link} ({mine}, {theirs}) VALUES (%s, %s) ON CONFLICT DO NOTHING",  # noqa: S608
                [parent_id, child_id],
            )

    def unlink(self, f: ApiField, parent_id: Any, child_id: Any) -> Steps[bool]:
        """Disconnect one pair; False when they were not connected."""
        target = f.target
        if f.is_inline_here:
            holder, fk, pid = (
                self.table(f.model),
                ident(f.inline_column),
                ident(f.model.id_field.column),
            )
            query = f"UPDATE {holder} SET {fk} = NULL WHERE {pid} = %s AND {fk} = %s"  # noqa: S608
            params = [parent_id, child_id]
        elif f.is_inline_there:
            holder, fk, cid = (
                self.table(target),
                ident(f.inline_column),
                ident(target.id_field.column),
            )
            query = f"UPDATE {holder} SET {fk} = NULL WHERE {cid} = %s AND {fk} = %s"  # noqa: S608
            params = [child_id, parent_id]
        else:
            mine, theirs = (ident(c) for c in f.link_columns)
            query = f"DELETE FROM {self.link_table(f)} WHERE {mine} = %s AND {theirs} = %s"  # noqa: S608
            params = [parent_id, child_id]
        done = (yield from self.run(query, params)).rowcount > 0
        if done:
            self.touched.add((f.model.name, parent_id))
            self.touched.add((target.name, child_id))
        return done

    # Required relations -------------------------------------------------------------------

    def check_required_relations(self) -> Steps[None]:
        touched, self.touched = self.touched, set()
        # One order for every request, so transactions touching the same rows lock them alike.
        ordered = sorted(touched, key=_touched_order) if len(touched) > 1 else touched
        for model_name, node_id in ordered:
            model = self.api.model(model_name)
            required = [f for f in model.relation_fields if f.is_required]
            if not required or not (yield from self.exists(model, node_id)):
                continue
            for f in required:
                if not (yield from self.related_ids(f, node_id)):
                    assert f.relation is not None
                    raise errors.required_relation_violated(
                        f.relation.name, f.relation.model_a, f.relation.model_b
                    )


def _value_bytes(value: Any) -> int:
    """At most the bytes a parameter takes in a row (text as UTF-8; 16 for fixed-size types)."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode())
    if isinstance(value, bytes):
        return len(value)
    return 16


def _touched_order(touched: tuple[str, Any]) -> tuple[str, str, str]:
    """A total order on (model, id) pairs whatever the ids' types."""
    return touched[0], type(touched[1]).__name__, str(touched[1])
