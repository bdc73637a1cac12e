"""What a migration would do to existing data: Prisma's deploy warnings and data errors.

The rules are pure; the facts about the data (is a table empty, does a column hold nulls) come
through the small `DataFacts` protocol, so tests can state the facts directly and the runtime
answers them with a query each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from runtime.datamodel.schema import Field, Model, Relation, Schema, SchemaError, SchemaWarning
from runtime.migrations.planner import field_renames, model_renames
from runtime.migrations.sql import migration_value
from runtime.names import scalar_list_table
from runtime.migrations.steps import (
    CreateField,
    CreateRelation,
    DeleteField,
    DeleteModel,
    DeleteRelation,
    Step,
    UpdateEnum,
    UpdateField,
    UpdateRelation,
)

DATA_LOSS_MODEL = "You already have nodes for this model. This change will result in data loss."
DATA_LOSS_RELATION = (
    "You already have nodes for this relation. This change will result in data loss."
)
DATA_LOSS_FIELD = "You already have nodes for this model. This change may result in data loss."


class DataFacts(Protocol):
    """Questions about the data of one service schema (tables and columns by database name)."""

    def has_rows(self, table: str) -> bool: ...

    def has_nulls(self, table: str, column: str) -> bool: ...

    def has_values(self, table: str, column: str) -> bool: ...

    def has_duplicates(self, table: str, column: str) -> bool:
        """A non-null value appears in two rows."""
        ...

    def has_value(self, table: str, column: str, value: str) -> bool: ...

    def has_pairs(self, table: str, column_a: str, column_b: str) -> bool:
        """A row links two nodes (both columns set)."""
        ...

    def has_unlinked(
        self, model_table: str, id_column: str, table: str, this_column: str, other_column: str
    ) -> bool:
        """A node of `model_table` appears in no row of `table` that links it to another."""
        ...


@dataclass
class DataCheck:
    warnings: list[SchemaWarning] = field(default_factory=list)
    errors: list[SchemaError] = field(default_factory=list)


def type_identifier(f: Field) -> str:
    """Prisma's TypeIdentifier: every enum is `Enum`, every relation `Relation`."""
    if f.kind == "relation":
        return "Relation"
    if f.kind == "enum":
        return "Enum"
    return f.type_name


def display_value(f: Field, schema: Schema) -> str:
    """`migValue.value` as Prisma prints it in its warnings (a Scala Double keeps its `.0`)."""
    value = migration_value(f, schema)
    if f.type_name == "Float" and f.kind == "scalar":
        number = float(value)
        return f"{number:.1f}" if number.is_integer() and abs(number) < 1e7 else repr(number)
    return value


def relation_columns(schema: Schema, relation: Relation) -> tuple[str, str, str] | None:
    """(table, column of side A, column of side B) where the relation's pairs are stored."""
    if relation.link == "TABLE":
        return relation.table, relation.column_a, relation.column_b
    holder = schema.model(relation.inline_model or "")
    if holder is None:
        return None
    holder_field = next(
        (f for f in holder.fields if f.kind == "relation" and f.relation_name == relation.name),
        None,
    )
    if relation.model_a == relation.model_b:
        holder_is_a = holder_field is not None and holder_field.name == relation.field_a
    else:
        holder_is_a = holder.name == relation.model_a
    id_column = holder.id_field.column
    inline = relation.inline_column or ""
    if holder_is_a:
        return holder.table, id_column, inline
    return holder.table, inline, id_column


def relation_side(relation: Relation, model: str, f: Field) -> str:
    if relation.model_a == relation.model_b:
        return "A" if f.name == relation.field_a else "B"
    return "A" if relation.model_a == model else "B"


class _Checker:
    """A port of Prisma's `DestructiveChanges`: one check per step, against existing data."""

    def __init__(self, old: Schema, new: Schema, facts: DataFacts) -> None:
        self.old = old
        self.new = new
        self.facts = facts
        self.renames = model_renames(old, new)
        self.result = DataCheck()

    def warn(self, type_: str, field_name: str | None, description: str) -> None:
        self.result.warnings.append(SchemaWarning(type_, field_name, description))

    def error(self, type_: str, field_name: str | None, description: str) -> None:
        self.result.errors.append(SchemaError(type_, field_name, description))

    def previous_model(self, new_name: str) -> Model | None:
        old_name = self.renames.get(new_name)
        return self.old.model(old_name) if old_name else None

    def relation_has_pairs(self, relation: Relation) -> bool:
        where = relation_columns(self.old, relation)
        return where is not None and self.facts.has_pairs(*where)

    def run(self, steps: list[Step]) -> DataCheck:
        for step in steps:
            if isinstance(step, DeleteModel):
                model = self.old.model(step.name)
                if model is not None and self.facts.has_rows(model.table):
                    self.warn(step.name, None, DATA_LOSS_MODEL)
            elif isinstance(step, CreateField):
                self.create_field(step)
            elif isinstance(step, DeleteField):
                self.delete_field(step)
            elif isinstance(step, UpdateField):
                self.update_field(step)
            elif isinstance(step, UpdateEnum):
                self.update_enum(step)
            elif isinstance(step, CreateRelation):
                self.create_relation(step)
            elif isinstance(step, DeleteRelation):
                relation = self.old.relation(step.name)
                if relation is not None and self.relation_has_pairs(relation):
                    self.warn(step.name, None, DATA_LOSS_RELATION)
            elif isinstance(step, UpdateRelation):
                self.update_relation(step)
        for step in steps:
            if isinstance(step, CreateField):
                self.missing_behaviour(step)
        return self.result

    def missing_behaviour(self, step: CreateField) -> None:
        """A new `createdAt`/`updatedAt` field without its directive is only a plain DateTime:
        Prisma warns once, when the field is created (any model, data or not)."""
        model = self.new.model(step.model)
        f = model.field(step.name) if model else None
        if f is None or f.name not in ("createdAt", "updatedAt") or f.behaviour == f.name:
            return
        verb = "created" if f.name == "createdAt" else "updated"
        self.warn(
            step.model,
            step.name,
            f"You are adding the field `{f.name}` but is missing the directive `@{f.name}`. "
            f"Please specify the field as `{f.name}: DateTime! @{f.name}` if you want to track "
            f"the times for when a record was {verb}. Or deploy with `--force` to ignore this.",
        )

    def create_field(self, step: CreateField) -> None:
        model = self.previous_model(step.model)
        new_model = self.new.model(step.model)
        f = new_model.field(step.name) if new_model else None
        if model is None or f is None:
            return
        if (
            f.kind != "relation"
            and f.is_required
            and not f.is_list
            and self.facts.has_rows(model.table)
        ):
            if f.is_unique:
                self.error(
                    step.model,
                    step.name,
                    f"You are creating a new required unique field `{step.name}`. There are "
                    f"already nodes for the model `{step.model}` that would violate that "
                    "constraint.",
                )
            else:
                self.warn(
                    step.model,
                    step.name,
                    "You are creating a required field but there are already nodes present "
                    "that would violate that constraint.The fields will be pre-filled with "
                    f"the value `{display_value(f, self.new)}`.",
                )
        if f.kind == "relation" and not f.is_list and f.relation_name:
            previous = self.old.relation(f.relation_name)
            where = relation_columns(self.old, previous) if previous else None
            if previous is None or where is None:
                return
            side = "A" if previous.model_a == model.name else "B"
            table, column_a, column_b = where
            column = column_a if side == "A" else column_b
            if self.facts.has_duplicates(table, column):
                self.error(
                    step.model,
                    step.name,
                    "You are adding a singular backrelation field to a type but there are "
                    "already pairs in the relation that would violate that constraint.",
                )

    def delete_field(self, step: DeleteField) -> None:
        new_model = self.new.model(step.model)
        model = self.previous_model(step.model) if new_model else self.old.model(step.model)
        f = model.field(step.name) if model else None
        if model is None or f is None or f.kind == "relation":
            return
        if self.facts.has_rows(model.table):
            self.warn(step.model, step.name, DATA_LOSS_FIELD)

    def update_field(self, step: UpdateField) -> None:
        new_model = self.new.model(step.model)
        model = self.previous_model(step.model)
        if new_model is None or model is None:
            return
        before = model.field(step.name)
        after_name = next(
            (n for n, o in field_renames(model, new_model).items() if o == step.name), None
        )
        after = new_model.field(after_name) if after_name else None
        if before is None or after is None:
            return
        type_changes = type_identifier(before) != type_identifier(after)
        recreated = before.is_list != after.is_list or type_changes
        if recreated and self.facts.has_rows(model.table):
            self.warn(step.model, step.name, DATA_LOSS_FIELD)
            if after.is_required and after.kind != "relation":
                self.warn(step.model, step.name, self.prefilled(after))
        if after.is_required and not before.is_required and self.has_nulls(model, before):
            if after.is_unique:
                self.error(
                    step.model,
                    step.name,
                    f"You are updating the field `{step.name}` to be required and unique. But "
                    f"there are already nodes for the model `{step.model}` that would violate "
                    "that constraint.",
                )
            elif after.kind != "relation":
                self.warn(step.model, step.name, self.prefilled(after))
            else:
                self.error(
                    step.model,
                    step.name,
                    f"You are updating the field `{step.name}` to be required. But there are "
                    f"already nodes for the model `{step.model}` that would violate that "
                    "constraint.",
                )
        becomes_unique = after.is_unique and not before.is_unique
        if (
            becomes_unique
            and before.kind != "relation"
            and not before.is_list
            and self.facts.has_duplicates(model.table, before.column)
        ):
            self.error(
                step.model,
                step.name,
                f"You are updating the field `{step.name}` to be unique. But there are already "
                f"nodes for the model `{step.model}` that would violate that constraint.",
            )
        if before.is_id and after.is_id and type_changes and self.facts.has_rows(model.table):
            self.error(
                step.model,
                step.name,
                f"You are changing the type of the id field `{step.name}`. But there are already "
                "nodes for this model. This would require to regenerate IDs for all nodes which "
                "is not possible. You have to remove all nodes for this type by either running "
                f"`prisma reset` or through a `deleteMany{step.model}s` mutation.",
            )

    def prefilled(self, f: Field) -> str:
        return (
            "You are changing the type of a required field. The fields will be pre-filled with "
            f"the value: `{display_value(f, self.new)}`."
        )

    def has_nulls(self, model: Model, f: Field) -> bool:
        """Prisma's existsNullByModelAndField: a null column, or a node without a partner."""
        if f.kind != "relation":
            if f.is_list:
                return False
            return self.facts.has_nulls(model.table, f.column)
        relation = self.old.relation(f.relation_name or "")
        where = relation_columns(self.old, relation) if relation else None
        if relation is None or where is None:
            return False
        table, column_a, column_b = where
        side = relation_side(relation, model.name, f)
        this, other = (column_a, column_b) if side == "A" else (column_b, column_a)
        return self.facts.has_unlinked(model.table, model.id_field.column, table, this, other)

    def update_enum(self, step: UpdateEnum) -> None:
        before = self.old.enum(step.name)
        after = self.new.enum(step.new_name or step.name)
        if before is None or after is None:
            return
        users = [
            (model, f)
            for model in self.old.models
            for f in model.fields
            if f.kind == "enum" and f.type_name == step.name
        ]
        for value in before.values:
            if value in after.values:
                continue
            in_use = any(
                self.facts.has_value(scalar_list_table(model, f), "value", value)
                if f.is_list
                else self.facts.has_value(model.table, f.column, value)
                for model, f in users
            )
            if in_use:
                self.error(
                    "Global",
                    None,
                    f"You are deleting the value '{value}' of the enum '{step.name}', but that "
                    "value is in use.",
                )

    def create_relation(self, step: CreateRelation) -> None:
        relation = self.new.relation(step.name)
        if relation is None:
            return
        for model_name in (relation.model_a, relation.model_b):
            new_model = self.new.model(model_name)
            f = next(
                (
                    f
                    for f in (new_model.fields if new_model else ())
                    if f.kind == "relation" and f.relation_name == relation.name
                ),
                None,
            )
            if f is None or not f.is_required or f.is_list:
                continue
            model = self.previous_model(model_name)
            if model is not None and self.facts.has_rows(model.table):
                self.error(
                    model_name,
                    None,
                    "You are creating a required relation, but there are already nodes that "
                    "would violate that constraint.",
                )

    def update_relation(self, step: UpdateRelation) -> None:
        before = self.old.relation(step.name)
        after = self.new.relation(step.new_name or step.name)
        if before is None or after is None:
            return
        if before.link == after.link == "TABLE":
            return
        if before.link == after.link == "INLINE":
            holder = self.renames.get(after.inline_model or "", after.inline_model)
            if holder == before.inline_model:
                return
        if self.relation_has_pairs(before):
            self.warn(before.name, None, DATA_LOSS_RELATION)


def check_migration(old: Schema, new: Schema, steps: list[Step], facts: DataFacts) -> DataCheck:
    """Warnings that need `force`, and errors that stop the deploy, given the existing data."""
    return _Checker(old, new, facts).run(steps)


class DatabaseShape(Protocol):
    def columns(self, table: str) -> set[str] | None:
        """The table's column names, or None when the table does not exist."""
        ...


def check_passive(schema: Schema, shape: DatabaseShape) -> list[SchemaError]:
    """A `noMigration` deploy changes no table: the datamodel must describe what is there."""
    errors: list[SchemaError] = []

    def missing_table(owner: str, field: str | None, table: str, what: str) -> bool:
        if shape.columns(table) is None:
            errors.append(
                SchemaError(
                    owner, field, f"Could not find the table for the {what} in the database."
                )
            )
            return True
        return False

    for model in schema.models:
        if missing_table(model.name, None, model.table, f"model `{model.name}`"):
            continue
        columns = shape.columns(model.table) or set()
        for f in model.fields:
            if f.kind == "relation":
                continue
            if f.is_list:
                missing_table(
                    model.name, f.name, scalar_list_table(model, f), f"scalar list `{f.name}`"
                )
            elif f.column not in columns:
                errors.append(
                    SchemaError(
                        model.name,
                        f.name,
                        f"Could not find the column for the field `{f.name}` in the table "
                        f"`{model.table}`.",
                    )
                )
    for relation in schema.relations:
        if relation.link == "TABLE":
            missing_table(relation.name, None, relation.table, f"relation `{relation.name}`")
            continue
        holder = schema.model(relation.inline_model or "")
        holder_columns = shape.columns(holder.table) if holder else None
        if holder and holder_columns is not None and relation.inline_column not in holder_columns:
            errors.append(
                SchemaError(
                    holder.name,
                    None,
                    f"Could not find the column `{relation.inline_column}` of the relation "
                    f"`{relation.name}` in the table `{holder.table}`.",
                )
            )
    return errors
