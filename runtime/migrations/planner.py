"""Plan a migration: the steps that turn the deployed schema into the new one.

A pure function of two schemas. Renames follow `@rename(oldName:)`; anything else that
disappears is deleted and anything that appears is created, exactly as Prisma infers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from runtime.datamodel.schema import Field, Model, Relation, Schema
from runtime.migrations.steps import (
    CreateEnum,
    CreateField,
    CreateModel,
    CreateRelation,
    DeleteEnum,
    DeleteField,
    DeleteModel,
    DeleteRelation,
    Step,
    UpdateEnum,
    UpdateField,
    UpdateModel,
    UpdateRelation,
)

T = TypeVar("T")


def _renames(old: Sequence[Model | Field], new: Sequence[Model | Field]) -> dict[str, str]:
    """New name -> the old item it continues: the same name, or a free `@rename(oldName:)`."""
    old_names = {item.name for item in old}
    new_names = {item.name for item in new}
    mapping: dict[str, str] = {}
    for item in new:
        if item.name in old_names:
            mapping[item.name] = item.name
        elif item.old_name and item.old_name in old_names and item.old_name not in new_names:
            mapping[item.name] = item.old_name
    return mapping


def model_renames(old: Schema, new: Schema) -> dict[str, str]:
    """New model name -> the old model it continues (itself when not renamed)."""
    return _renames(old.models, new.models)


def field_renames(old_model: Model, new_model: Model) -> dict[str, str]:
    """New field name -> the old field it continues."""
    return _renames(old_model.fields, new_model.fields)


def plan_migration(old: Schema, new: Schema) -> list[Step]:
    """The steps from `old` to `new`, in an order that reads well and applies safely."""
    renames = model_renames(old, new)
    continued = set(renames.values())
    steps: list[Step] = []

    old_enums = {e.name: e for e in old.enums}
    new_enums = {e.name: e for e in new.enums}
    for enum in new.enums:
        if enum.name not in old_enums:
            steps.append(CreateEnum(name=enum.name, values=list(enum.values)))
        elif old_enums[enum.name].values != enum.values:
            steps.append(UpdateEnum(name=enum.name, new_name=None, values=list(enum.values)))

    old_relations = {r.name: r for r in old.relations}
    new_relations = {r.name: r for r in new.relations}
    for relation in old.relations:
        if relation.name not in new_relations:
            steps.append(DeleteRelation(name=relation.name))

    for new_model in new.models:
        old_name = renames.get(new_model.name)
        if old_name is None:
            continue
        old_model = old.model(old_name)
        assert old_model is not None
        if old_name != new_model.name:
            steps.append(UpdateModel(name=old_name, new_name=new_model.name))
        steps.extend(_field_steps(old_model, new_model))

    for model in old.models:
        if model.name not in continued:
            steps.append(DeleteModel(name=model.name))

    for model in new.models:
        if model.name in renames:
            continue
        steps.append(CreateModel(name=model.name))
        steps.extend(_create_field(model, f) for f in model.fields)

    for relation in new.relations:
        before = old_relations.get(relation.name)
        if before is None:
            steps.append(
                CreateRelation(
                    name=relation.name,
                    left_model=relation.model_a,
                    right_model=relation.model_b,
                    after=relation.manifestation(),
                )
            )
        elif _relation_changed(before, relation, renames):
            steps.append(
                UpdateRelation(
                    name=relation.name,
                    new_name=None,
                    before=before.manifestation(),
                    after=relation.manifestation(),
                )
            )

    for enum in old.enums:
        if enum.name not in new_enums:
            steps.append(DeleteEnum(name=enum.name))
    return steps


def _field_steps(old_model: Model, new_model: Model) -> list[Step]:
    renames = field_renames(old_model, new_model)
    steps: list[Step] = []
    for old_field in old_model.fields:
        if old_field.name not in renames.values():
            steps.append(DeleteField(model=new_model.name, name=old_field.name))
    for f in new_model.fields:
        old_name = renames.get(f.name)
        if old_name is None:
            steps.append(_create_field(new_model, f))
            continue
        previous = old_model.field(old_name)
        assert previous is not None
        update = _update_field(new_model, previous, f)
        if update is not None:
            steps.append(update)
    return steps


def _create_field(model: Model, f: Field) -> CreateField:
    return CreateField(
        model=model.name,
        name=f.name,
        type_name=f.type_name,
        is_required=f.is_required,
        is_list=f.is_list,
        unique=f.is_unique,
        enum=f.type_name if f.kind == "enum" else None,
        default=f.default,
        relation=f.relation_name,
    )


def _update_field(model: Model, before: Field, after: Field) -> UpdateField | None:
    def diff(a: T, b: T) -> T | None:
        return b if a != b else None

    changed = (
        before.name != after.name
        or before.type_name != after.type_name
        or before.is_required != after.is_required
        or before.is_list != after.is_list
        or before.is_unique != after.is_unique
        or before.default != after.default
        or before.relation_name != after.relation_name
        or before.column != after.column
        or before.is_id != after.is_id
    )
    if not changed:
        return None
    return UpdateField(
        model=model.name,
        name=before.name,
        new_name=diff(before.name, after.name),
        type_name=diff(before.type_name, after.type_name),
        is_required=diff(before.is_required, after.is_required),
        is_list=diff(before.is_list, after.is_list),
        unique=diff(before.is_unique, after.is_unique),
        enum=after.type_name
        if after.kind == "enum" and before.type_name != after.type_name
        else None,
        default=diff(before.default, after.default),
        relation=diff(before.relation_name, after.relation_name),
    )


def _relation_changed(before: Relation, after: Relation, renames: dict[str, str]) -> bool:
    back = {new: old for new, old in renames.items()}

    def old_name(model: str | None) -> str | None:
        return back.get(model, model) if model else model

    return (
        before.link != after.link
        or before.model_a != old_name(after.model_a)
        or before.model_b != old_name(after.model_b)
        or before.inline_model != old_name(after.inline_model)
        or before.inline_column != after.inline_column
    )
