"""The inferred schema of a service: models, fields, enums and relations.

This is what a deploy stores in `management."Migration".schema` and what the migration planner
diffs. It is plain frozen data so that it can be compared, serialised and passed around freely.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCALAR_TYPES = frozenset({"ID", "String", "Int", "Float", "Boolean", "DateTime", "Json", "UUID"})

FieldKind = Literal["scalar", "enum", "relation"]


@dataclass(frozen=True)
class SchemaError:
    """A datamodel problem in Prisma's `{type, field, description}` shape."""

    type: str
    field: str | None
    description: str

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "field": self.field, "description": self.description}


@dataclass(frozen=True)
class SchemaWarning(SchemaError):
    """A deploy warning (usually about existing data), in the same shape as an error."""


@dataclass(frozen=True)
class Field:
    name: str
    type_name: str
    kind: FieldKind
    is_required: bool
    is_list: bool
    is_unique: bool = False
    is_id: bool = False
    id_strategy: str | None = None
    default: str | None = None
    behaviour: str | None = None
    db_name: str | None = None
    relation_name: str | None = None
    link: str | None = None
    on_delete: str = "SET_NULL"
    old_name: str | None = None
    old_relation_name: str | None = None  # `@relation(oldName:)`: the relation it continues
    # `@sequence(name:, initialValue:, allocationSize:)` of an Int id with strategy SEQUENCE.
    sequence_name: str | None = None
    sequence_initial: int | None = None
    sequence_allocation: int | None = None

    @property
    def column(self) -> str:
        return self.db_name or self.name

    @property
    def is_scalar_list(self) -> bool:
        return self.kind != "relation" and self.is_list


@dataclass(frozen=True)
class Model:
    name: str
    fields: tuple[Field, ...]
    db_name: str | None = None
    old_name: str | None = None

    @property
    def table(self) -> str:
        return self.db_name or self.name

    @property
    def id_field(self) -> Field:
        return next(f for f in self.fields if f.is_id)

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Enum:
    name: str
    values: tuple[str, ...]
    old_name: str | None = None


@dataclass(frozen=True)
class Relation:
    """A relation between model A and model B (A sorts first), stored inline or in a table."""

    name: str
    model_a: str
    model_b: str
    field_a: str | None
    field_b: str | None
    link: Literal["INLINE", "TABLE"]
    inline_model: str | None = None
    inline_column: str | None = None
    # A link table declared with `@relationTable`: its own table and column names.
    table_name: str | None = None
    column_a: str = "A"
    column_b: str = "B"

    @property
    def table(self) -> str:
        return self.table_name or f"_{self.name}"

    def manifestation(self) -> dict[str, Any]:
        """The `RelationManifestation` value the management API reports."""
        if self.link == "INLINE":
            return {"type": "Inline", "model": self.inline_model, "column": self.inline_column}
        return {
            "type": "LinkTable",
            "table": self.table,
            "modelAColumn": self.column_a,
            "modelBColumn": self.column_b,
            "idColumn": None,
        }


@dataclass(frozen=True)
class LinkTable:
    """A type marked `@relationTable`: the table (and its two columns) of the relation that
    bears its name. `fields` are (field name, referenced model, column) in written order."""

    name: str
    table: str
    fields: tuple[tuple[str, str, str], ...]


@dataclass(frozen=True)
class Schema:
    models: tuple[Model, ...] = ()
    enums: tuple[Enum, ...] = ()
    relations: tuple[Relation, ...] = field(default=())

    def model(self, name: str) -> Model | None:
        return next((m for m in self.models if m.name == name), None)

    def enum(self, name: str) -> Enum | None:
        return next((e for e in self.enums if e.name == name), None)

    def relation(self, name: str) -> Relation | None:
        return next((r for r in self.relations if r.name == name), None)

    def to_json(self) -> str:
        return json.dumps({"version": "v2", **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Schema:
        """Read a stored schema; an empty or foreign (Prisma-written) value is an empty schema."""
        if not text:
            return cls()
        data = json.loads(text)
        if "models" not in data or data.get("version") != "v2":
            return cls()
        return cls(
            models=tuple(
                Model(
                    name=m["name"],
                    fields=tuple(Field(**f) for f in m["fields"]),
                    db_name=m.get("db_name"),
                    old_name=m.get("old_name"),
                )
                for m in data["models"]
            ),
            enums=tuple(
                Enum(name=e["name"], values=tuple(e["values"]), old_name=e.get("old_name"))
                for e in data["enums"]
            ),
            relations=tuple(Relation(**r) for r in data["relations"]),
        )
