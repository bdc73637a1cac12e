"""Plan a migration: the steps that turn the deployed schema into the new one.

A pure function of two schemas. Renames follow `@rename(oldName:)`; anything else that
disappears is deleted and anything that appears is created, exactly as Prisma infers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from runtime.datamodel.schema import Enum, Field, Model, Relation, Schema
from runtime.errors import PrismaError
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


def _renames(
    old: Sequence[Model | Field | Enum], new: Sequence[Model | Field | Enum]
) -> dict[str, str]:
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


class UpdatedRelationAmbiguous(PrismaError):
    """Prisma's 3018: which old relation a new one continues cannot be told (a GraphQL error)."""

    def __init__(self, message: str) -> None:
        super().__init__(3018, message)


def relation_renames(new: Schema) -> list[tuple[str, str]]:
    """(previous, next) relation names from `@relation(name:, oldName:)`, in document order."""
    pairs: list[tuple[str, str]] = []
    for model in new.models:
        for f in model.fields:
            if f.kind == "relation" and f.relation_name:
                pair = (f.old_relation_name or f.relation_name, f.relation_name)
                if pair not in pairs:
                    pairs.append(pair)
    return pairs


def _generated_name(first: str, second: str) -> str:
    return f"{first}To{second}" if first < second else f"{second}To{first}"


def _connects(relation: Relation, a: str, b: str) -> bool:
    return (relation.model_a, relation.model_b) in ((a, b), (b, a))


class _RelationMatcher:
    """Which relations of the old schema continue in the new one: a port of
    `MigrationStepsInferrerImpl`'s relationNotInPreviousSchema / relationNotInNextSchema /
    relationsToUpdate. Prisma matches by name, generated name or `oldName`, and by the two models
    (after model renames); a relation whose models change is deleted and created again."""

    def __init__(self, old: Schema, new: Schema) -> None:
        self.old = old
        self.new = new
        self.model_back = model_renames(old, new)  # new name -> old name
        self.model_next = {o: n for n, o in self.model_back.items()}
        self.renames = relation_renames(new)

    def previous_model(self, name: str) -> str:
        return self.model_back.get(name, name)

    def next_model(self, name: str) -> str:
        return self.model_next.get(name, name)

    def previous_relation(self, name: str) -> str:
        return next((p for p, n in self.renames if n == name), name)

    def next_relation(self, name: str) -> str:
        return next((n for p, n in self.renames if p == name), name)

    def renamed_away(self, name: str) -> bool:
        return any(n == name and p != n for p, n in self.renames)

    def not_in_previous(self, after: Relation) -> bool:
        generated = _generated_name(after.model_a, after.model_b)
        next_count = sum(_connects(r, after.model_a, after.model_b) for r in self.new.relations)
        prev_a = self.previous_model(after.model_a)
        prev_b = self.previous_model(after.model_b)
        prev_count = sum(_connects(r, prev_a, prev_b) for r in self.old.relations)
        for before in self.old.relations:
            exactly = before.model_a == prev_a and before.model_b == prev_b
            switched = before.model_a == prev_b and before.model_b == prev_a
            unchanged = before.name == after.name and not self.renamed_away(after.name)
            name_matches = (
                before.name == _generated_name(prev_a, prev_b)
                or unchanged
                or before.name == self.previous_relation(after.name)
            )
            if after.name == generated and next_count == 1 and prev_count > 1:
                raise UpdatedRelationAmbiguous(
                    "There is a relation ambiguity during the migration. The ambiguity is on a "
                    f"relation between {before.model_a} and {before.model_b}. Please name "
                    "relations or change the schema in steps."
                )
            name_removed = after.name == generated and next_count == 1 and prev_count == 1
            if (name_matches or name_removed) and (exactly or switched):
                return False
        return True

    def not_in_next(self, before: Relation) -> bool:
        generated = _generated_name(before.model_a, before.model_b)
        prev_count = sum(_connects(r, before.model_a, before.model_b) for r in self.old.relations)
        next_a = self.next_model(before.model_a)
        next_b = self.next_model(before.model_b)
        next_count = sum(_connects(r, next_a, next_b) for r in self.new.relations)
        for after in self.new.relations:
            exactly = after.model_a == next_a and after.model_b == next_b
            switched = after.model_a == next_b and after.model_b == next_a
            unchanged = after.name == before.name and not self.renamed_away(after.name)
            renamed = after.name == self.next_relation(before.name) and any(
                p == before.name and n != before.name for p, n in self.renames
            )
            name_matches = after.name == _generated_name(next_a, next_b) or unchanged or renamed
            if before.name == generated and next_count > 1 and prev_count == 1:
                raise UpdatedRelationAmbiguous(
                    "There is a relation ambiguity during the migration. Please first name the "
                    "old relation on your schema. The ambiguity is on a relation between "
                    f"{before.model_a} and {before.model_b}. Please name relations or change "
                    "the schema in steps."
                )
            was_unnamed = before.name == generated and next_count == 1 and prev_count == 1
            if (name_matches or was_unnamed) and (exactly or switched):
                return False
        return True

    def continuation(self, before: Relation) -> Relation | None:
        """The new relation an old one becomes, when it is kept."""
        found = self.new.relation(self.next_relation(before.name))
        if found is not None:
            return found
        next_a, next_b = self.next_model(before.model_a), self.next_model(before.model_b)
        was_ambiguous = (
            sum(_connects(r, before.model_a, before.model_b) for r in self.old.relations) > 1
        )
        connecting = [r for r in self.new.relations if _connects(r, next_a, next_b)]
        if was_ambiguous or len(connecting) > 1:
            return None
        return connecting[0] if connecting else None


def relation_continuations(old: Schema, new: Schema) -> dict[str, str]:
    """Old relation name -> the new relation that keeps its data (renamed or not)."""
    matcher = _RelationMatcher(old, new)
    kept: dict[str, str] = {}
    for before in old.relations:
        if matcher.not_in_next(before):
            continue
        after = matcher.continuation(before)
        if after is not None:
            kept[before.name] = after.name
    return kept


def plan_migration(old: Schema, new: Schema) -> list[Step]:
    """The steps from `old` to `new`, in an order that reads well and applies safely.

    Raises `UpdatedRelationAmbiguous` (3018) as Prisma does when relations between two models
    cannot be matched.
    """
    renames = model_renames(old, new)
    continued = set(renames.values())
    steps: list[Step] = []
    matcher = _RelationMatcher(old, new)
    deleted_relations = [r for r in old.relations if matcher.not_in_next(r)]
    deleted = {r.name for r in deleted_relations}
    continuations = {
        before.name: after
        for before in old.relations
        if before.name not in deleted and (after := matcher.continuation(before)) is not None
    }
    targets = {after.name for after in continuations.values()}
    # Prisma's matching can call a new relation "not new" without any old one continuing into
    # it (two sides naming different relations); it must still get its column or table.
    created_relations = [
        r for r in new.relations if matcher.not_in_previous(r) or r.name not in targets
    ]

    enum_renames = _renames(old.enums, new.enums)
    for enum in new.enums:
        previous = old.enum(enum_renames.get(enum.name, ""))
        if previous is None:
            steps.append(CreateEnum(name=enum.name, values=list(enum.values)))
        elif previous.values != enum.values or previous.name != enum.name:
            steps.append(
                UpdateEnum(
                    name=previous.name,
                    new_name=enum.name if enum.name != previous.name else None,
                    values=list(enum.values) if previous.values != enum.values else None,
                )
            )

    for relation in deleted_relations:
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

    for relation in created_relations:
        steps.append(
            CreateRelation(
                name=relation.name,
                left_model=relation.model_a,
                right_model=relation.model_b,
                after=relation.manifestation(),
            )
        )
    for before in old.relations:
        after = continuations.get(before.name)
        if after is not None and _relation_changed(before, after):
            steps.append(
                UpdateRelation(
                    name=before.name,
                    new_name=after.name if after.name != before.name else None,
                    before=before.manifestation(),
                    after=after.manifestation(),
                )
            )

    continued_enums = set(enum_renames.values())
    for enum in old.enums:
        if enum.name not in continued_enums:
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


def _relation_changed(before: Relation, after: Relation) -> bool:
    """Prisma's test: name, either model (a renamed model counts) or the manifestation."""
    return (
        before.name != after.name
        or before.model_a != after.model_a
        or before.model_b != after.model_b
        or before.manifestation() != after.manifestation()
    )
