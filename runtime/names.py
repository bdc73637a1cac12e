"""Quoting and naming for SQL text. A leaf module: it imports nothing of the runtime, so the DDL
compiler (`migrations`), the data API (`opencrud`), the management API and the bulk endpoints
share one definition.

Data API statements are compiled once per datamodel and shared by every service deployed with
it, so they never name a service's schema: they name `SERVICE_SCHEMA`, a placeholder that the
drivers (`opencrud.steps`) replace with the schema of the service the request is for, at the
moment the statement runs. The placeholder holds a NUL character, which no identifier, literal
or value of ours can contain and which PostgreSQL refuses in query text, so a statement that
escaped the replacement fails loudly instead of running against some other schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtime.datamodel.schema import Field, Model

SERVICE_SCHEMA = '"\x00service\x00"'


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    if "\x00" in name:
        raise ValueError("an SQL identifier cannot contain a NUL character")
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A quoted SQL string literal (for names and type names the compiler writes into SQL)."""
    if "\x00" in value:
        raise ValueError("an SQL literal cannot contain a NUL character")
    return "'" + value.replace("'", "''") + "'"


def in_service_schema(table: str) -> str:
    """A table of the request's service: the placeholder schema, bound when the statement runs."""
    return f"{SERVICE_SCHEMA}.{ident(table)}"


def schema_sql(schema: str, version: str = "") -> str:
    """What the placeholder becomes for a service whose tables live in `schema`, deployed with
    the datamodel `version` (a digest, hex).

    The version rides along as a comment. psycopg prepares a statement after a few executions
    on a connection, keyed by its text, and PostgreSQL refuses to run a prepared statement whose
    result types changed ("cached plan must not change result type"): after a deploy that
    changes a column's type, or a service deleted and deployed again under its name with
    another datamodel. With the version in the text, a new datamodel's statements are new
    statements for PostgreSQL.
    """
    if version and not version.isalnum():
        raise ValueError("a datamodel version is alphanumeric")
    return f"/*{version}*/{ident(schema)}" if version else ident(schema)


def bind_schema(query: str, bound: str) -> str:
    """The statement as it runs for one service: `bound` comes from `schema_sql`."""
    return query.replace(SERVICE_SCHEMA, bound)


def scalar_list_table(model: Model, f: Field) -> str:
    return f"{model.table}_{f.name}"
