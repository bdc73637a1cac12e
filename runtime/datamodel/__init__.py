"""Datamodel 1.1: parse, validate and infer the schema a deploy would create.

`parse_datamodel` is a pure function. It never raises on bad input: every problem comes back as
a `SchemaError` in Prisma's `{type, field, description}` shape, all of them at once, so a user
fixes a datamodel in one round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runtime.datamodel.parser import parse_document
from runtime.datamodel.relations import infer_relations
from runtime.datamodel.schema import (
    SCALAR_TYPES,
    Enum,
    Field,
    Model,
    Relation,
    Schema,
    SchemaError,
    SchemaWarning,
)

__all__ = [
    "SCALAR_TYPES",
    "DatamodelResult",
    "Enum",
    "Field",
    "Model",
    "Relation",
    "Schema",
    "SchemaError",
    "SchemaWarning",
    "parse_datamodel",
]

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_TYPES = 500


@dataclass
class DatamodelResult:
    schema: Schema | None
    errors: list[SchemaError] = field(default_factory=list)
    syntax_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.schema is not None and not self.errors


def parse_datamodel(
    text: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_types: int = DEFAULT_MAX_TYPES
) -> DatamodelResult:
    """Validate a datamodel and infer its schema (relations included).

    The size limit is checked before parsing: a multi-megabyte document would otherwise cost the
    parser seconds of CPU before being refused anyway.
    """
    size = len(text.encode())
    if size > max_bytes:
        return DatamodelResult(
            None,
            [
                SchemaError(
                    "Global",
                    None,
                    f"The datamodel is {_human(size)}, larger than this server's limit of "
                    f"{_human(max_bytes)}. Split the service or remove unused types.",
                )
            ],
        )
    if not re.sub(r"#[^\n]*", "", text).strip():
        return DatamodelResult(Schema())  # nothing declared: a service without types
    parsed = parse_document(text)
    if parsed.syntax_error is not None:
        return DatamodelResult(None, parsed.errors, parsed.syntax_error)
    errors = parsed.errors
    if len(parsed.models) + len(parsed.enums) > max_types:
        errors.append(
            SchemaError(
                "Global",
                None,
                f"The datamodel declares {len(parsed.models) + len(parsed.enums)} types and enums; "
                f"this server accepts at most {max_types}.",
            )
        )
    errors.extend(_crossed_renames(parsed.models))
    models, relations = infer_relations(parsed.models, errors, parsed.link_tables)
    if errors:
        return DatamodelResult(None, _unique(errors))
    return DatamodelResult(
        Schema(models=tuple(models), enums=tuple(parsed.enums), relations=tuple(relations))
    )


def _crossed_renames(models: list[Model]) -> list[SchemaError]:
    """A type renamed to the old name of another renamed type (`A -> B` and `B -> A`) cannot be
    applied in one deploy; Prisma's `validateCrossRenames` asks for two."""
    errors = []
    for renamed in models:
        if not renamed.old_name:
            continue
        other = next((m for m in models if m is not renamed and m.old_name == renamed.name), None)
        if other is not None:
            errors.append(
                SchemaError(
                    renamed.name,
                    None,
                    f"You renamed type `{renamed.old_name}` to `{renamed.name}`. But that is the "
                    f"old name of type `{other.name}`. Please do this in two steps.",
                )
            )
    return errors


def _unique(errors: list[SchemaError]) -> list[SchemaError]:
    return list(dict.fromkeys(errors))


def _human(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{size / 1000:.0f} kB"
