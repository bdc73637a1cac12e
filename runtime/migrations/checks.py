"""What a migration would do to existing data: Prisma's deploy warnings and data errors.

The rules are pure; the facts about the data (is a table empty, does a column hold nulls) come
through the small `DataFacts` protocol, so tests can state the facts directly and the runtime
answers them with a query each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from runtime.datamodel.schema import Schema, SchemaError, SchemaWarning
from runtime.migrations.planner import field_renames, model_renames
from runtime.migrations.sql import column_type, migration_value
from runtime.names import scalar_list_table
from runtime.migrations.steps import (
    CreateField,
    DeleteField,
    DeleteModel,
    DeleteRelation,
    Step,
    UpdateField,
    UpdateRelation,
)

DATA_LOSS_MODEL = "You already have nodes for this model. This change will result in data loss."
DATA_LOSS_RELATION = (
    "You already have nodes for this relation. This change will result in data loss."
)
DATA_LOSS_FIELD = "You already have nodes for this model. This change may result in data loss."


class DataFacts(Protocol):
    def has_rows(self, table: str) -> bool: ...

    def has_nulls(self, table: str, column: str) -> bool: ...

    def has_values(self, table: str, column: str) -> bool: ...


@dataclass
class DataCheck:
    warnings: list[SchemaWarning] = field(default_factory=list)
    errors: list[SchemaError] = field(default_factory=list)


def check_migration(old: Schema, new: Schema, steps: list[Step], facts: DataFacts) -> DataCheck:
    """Warnings that need `force`, and errors that stop the deploy, given the existing data."""
    result = DataCheck()
    renames = model_renames(old, new)
    for step in steps:
        if isinstance(step, DeleteModel):
            model = old.model(step.name)
            if model is not None and facts.has_rows(model.table):
                result.warnings.append(SchemaWarning(step.name, None, DATA_LOSS_MODEL))
        elif isinstance(step, DeleteRelation | UpdateRelation):
            relation = old.relation(step.name)
            if relation is None or (
                isinstance(step, UpdateRelation) and step.before["type"] == step.after["type"]
            ):
                continue
            if relation.link == "TABLE":
                holds_data = facts.has_rows(relation.table)
            else:
                holder = old.model(relation.inline_model or "")
                holds_data = holder is not None and facts.has_values(
                    holder.table, relation.inline_column or ""
                )
            if holds_data:
                result.warnings.append(SchemaWarning(step.name, None, DATA_LOSS_RELATION))
        elif isinstance(step, DeleteField):
            new_model = new.model(step.model)
            old_model = old.model(renames.get(step.model, step.model)) if new_model else None
            f = old_model.field(step.name) if old_model else None
            if old_model is None or f is None or f.kind == "relation":
                continue
            table = scalar_list_table(old_model, f) if f.is_list else old_model.table
            if facts.has_rows(table):
                result.warnings.append(SchemaWarning(step.model, step.name, DATA_LOSS_FIELD))
        elif isinstance(step, CreateField):
            model = new.model(step.model)
            if model is None or step.model not in renames:
                continue
            f = model.field(step.name)
            if f is None or f.kind == "relation" or f.is_list or not f.is_required:
                continue
            old_model = old.model(renames[step.model])
            if old_model is None or not facts.has_rows(old_model.table):
                continue
            if f.is_unique:
                result.errors.append(
                    SchemaError(
                        step.model,
                        step.name,
                        f"You are creating a new required unique field `{step.name}`. There are "
                        f"already nodes for the model `{step.model}` that would violate that "
                        "constraint.",
                    )
                )
            elif f.default is None:
                result.warnings.append(
                    SchemaWarning(
                        step.model,
                        step.name,
                        "You are creating a required field but there are already nodes present "
                        "that would violate that constraint.The fields will be pre-filled with "
                        f"the value `{migration_value(f, new)}`.",
                    )
                )
        elif isinstance(step, UpdateField):
            _check_update_field(old, new, renames, step, facts, result)
    return result


def _check_update_field(
    old: Schema,
    new: Schema,
    renames: dict[str, str],
    step: UpdateField,
    facts: DataFacts,
    result: DataCheck,
) -> None:
    new_model = new.model(step.model)
    old_model = old.model(renames.get(step.model, step.model))
    if new_model is None or old_model is None:
        return
    before = old_model.field(step.name)
    after_name = next(
        (n for n, o in field_renames(old_model, new_model).items() if o == step.name), None
    )
    after = new_model.field(after_name) if after_name else None
    if before is None or after is None or after.kind == "relation" or before.kind == "relation":
        return
    if not facts.has_rows(old_model.table):
        return
    if before.is_id and column_type(before) != column_type(after):
        result.errors.append(
            SchemaError(
                step.model,
                step.name,
                f"You are changing the type of the id field `{step.name}`. But there are already "
                "nodes for this model. This would require to regenerate IDs for all nodes which "
                "is not possible. You have to remove all nodes for this type by either running "
                f"`prisma reset` or through a `deleteMany{step.model}s` mutation.",
            )
        )
        return
    recreated = before.is_list != after.is_list or column_type(before) != column_type(after)
    if recreated:
        result.warnings.append(SchemaWarning(step.model, step.name, DATA_LOSS_FIELD))
        if after.is_required and not after.is_list:
            result.warnings.append(
                SchemaWarning(
                    step.model,
                    step.name,
                    "You are changing the type of a required field. The fields will be "
                    f"pre-filled with the value: `{migration_value(after, new)}`.",
                )
            )
        return
    if after.is_list:
        return
    if (
        after.is_required
        and not before.is_required
        and facts.has_nulls(old_model.table, before.column)
    ):
        if after.is_unique:
            result.errors.append(
                SchemaError(
                    step.model,
                    step.name,
                    f"You are updating the field `{step.name}` to be required and unique. But "
                    f"there are already nodes for the model `{step.model}` that would violate "
                    "that constraint.",
                )
            )
        else:
            result.warnings.append(
                SchemaWarning(
                    step.model,
                    step.name,
                    "You are making a field required but there are already nodes with no "
                    "value for it. The fields will be pre-filled with the value "
                    f"`{migration_value(after, new)}`.",
                )
            )


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
