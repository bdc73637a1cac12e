"""Migration steps, named and shaped like Prisma's so the CLI can print them.

Each step's `as_dict()` is the value the management API returns for the `MigrationStep`
interface (the `type` key is the GraphQL type name) and what `management."Migration".steps`
stores.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Step:
    def as_dict(self) -> dict[str, Any]:
        data = {_camel(f.name): getattr(self, f.name) for f in fields(self)}
        data["type"] = type(self).__name__
        return data


@dataclass(frozen=True)
class CreateEnum(Step):
    name: str
    values: list[str]


@dataclass(frozen=True)
class UpdateEnum(Step):
    name: str
    new_name: str | None
    values: list[str] | None


@dataclass(frozen=True)
class DeleteEnum(Step):
    name: str


@dataclass(frozen=True)
class CreateModel(Step):
    name: str


@dataclass(frozen=True)
class UpdateModel(Step):
    name: str
    new_name: str
    is_embedded: bool | None = None


@dataclass(frozen=True)
class DeleteModel(Step):
    name: str


@dataclass(frozen=True)
class CreateField(Step):
    model: str
    name: str
    type_name: str
    is_required: bool
    is_list: bool
    unique: bool
    enum: str | None
    default: str | None
    relation: str | None


@dataclass(frozen=True)
class UpdateField(Step):
    """A diff: every optional attribute is None unless it changed."""

    model: str
    name: str
    new_name: str | None = None
    type_name: str | None = None
    is_required: bool | None = None
    is_list: bool | None = None
    unique: bool | None = None
    enum: str | None = None
    default: str | None = None
    relation: str | None = None


@dataclass(frozen=True)
class DeleteField(Step):
    model: str
    name: str


@dataclass(frozen=True)
class CreateRelation(Step):
    name: str
    left_model: str
    right_model: str
    after: dict[str, Any]


@dataclass(frozen=True)
class UpdateRelation(Step):
    name: str
    new_name: str | None
    before: dict[str, Any]
    after: dict[str, Any]


@dataclass(frozen=True)
class DeleteRelation(Step):
    name: str


@dataclass(frozen=True)
class UpdateSecrets(Step):
    message: str = "Secrets have been updated."
