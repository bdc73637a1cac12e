"""Compile migration steps into PostgreSQL DDL for one service schema (reference section 7).

A pure function of (schema name, old schema, new schema, steps). Statements come out in phases
rather than in step order (drops, renames, in-place changes, creates, relations) so that every
statement finds the tables it needs, whatever order the steps were listed in. The caller runs
them in one transaction.
"""

from __future__ import annotations

import hashlib

from runtime.datamodel.schema import Field, Model, Relation, Schema
from runtime.names import ident, literal, scalar_list_table
from runtime.migrations.planner import field_renames, model_renames
from runtime.migrations.steps import (
    CreateField,
    CreateModel,
    CreateRelation,
    DeleteField,
    DeleteModel,
    DeleteRelation,
    Step,
    UpdateField,
    UpdateModel,
    UpdateRelation,
)

COLUMN_TYPES = {
    "ID": "varchar(25)",
    "UUID": "uuid",
    "String": "text",
    "Json": "text",
    "Int": "integer",
    "Float": "Decimal(65,30)",
    "Boolean": "boolean",
    "DateTime": "timestamp(3)",
}
# Prisma's MigrationValueGenerator: what existing rows get when a field becomes required.
MIGRATION_VALUES = {
    "ID": "DefaultCUIDMigrationValue",
    "UUID": "550e8400-e29b-11d4-a716-446655440000",
    "String": "",
    "Json": "{}",
    "Int": "0",
    "Float": "0",
    "Boolean": "false",
    "DateTime": "1970-01-01T00:00:00.000Z",
}


def index_name(table: str, column: str, suffix: str) -> str:
    """Prisma's `<Model>.<field>._UNIQUE` style, shortened to fit 63-byte identifiers."""
    name = f"{table}.{column}.{suffix}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]  # noqa: S324 - a name, not a secret
    return f"{name.encode()[:40].decode(errors='ignore')}_{digest}.{suffix}"


def unique_index_name(table: str, column: str) -> str:
    return index_name(table, column, "_UNIQUE")


def _type_identifier(f: Field) -> str:
    return "Enum" if f.kind == "enum" else f.type_name


def column_type(f: Field) -> str:
    return "text" if f.kind == "enum" else COLUMN_TYPES[f.type_name]


def migration_value(f: Field, schema: Schema) -> str:
    """What existing rows get when a field becomes required: its default, else a neutral value."""
    if f.default is not None:
        return f.default
    if f.kind == "enum":
        enum = schema.enum(f.type_name)
        return enum.values[0] if enum and enum.values else ""
    return MIGRATION_VALUES[f.type_name]


class _Compiler:
    def __init__(self, schema_name: str, old: Schema, new: Schema) -> None:
        self.schema_name = schema_name
        self.old = old
        self.new = new
        self.renames = model_renames(old, new)
        self.created: set[str] = set()

    def table(self, name: str) -> str:
        return f"{ident(self.schema_name)}.{ident(name)}"

    def index(self, name: str) -> str:
        return f"{ident(self.schema_name)}.{ident(name)}"

    def old_model_for(self, new_model: Model) -> Model | None:
        old_name = self.renames.get(new_model.name)
        return self.old.model(old_name) if old_name else None

    # Storage of one field ---------------------------------------------------------------

    def drop_field(self, model: Model, f: Field) -> list[str]:
        if f.kind == "relation" or f.is_id:
            return []
        if f.is_list:
            return [f"DROP TABLE IF EXISTS {self.table(scalar_list_table(model, f))}"]
        return [f"ALTER TABLE {self.table(model.table)} DROP COLUMN IF EXISTS {ident(f.column)}"]

    def create_table(self, model: Model) -> str:
        """A new table gets its plain columns at once: it is empty, nothing needs back-filling."""
        columns = [self.id_column(model)]
        for f in model.fields:
            if f.kind != "relation" and not f.is_list and not f.is_id:
                null = "NOT NULL" if f.is_required else "NULL"
                columns.append(f"{ident(f.column)} {column_type(f)} {null}")
        columns.append(f"PRIMARY KEY ({ident(model.id_field.column)})")
        return f"CREATE TABLE {self.table(model.table)} ({', '.join(columns)})"

    def create_field(self, model: Model, f: Field) -> list[str]:
        if f.kind == "relation" or f.is_id:
            return []
        table = self.table(model.table)
        if model.name in self.created and not f.is_list:
            return [self.create_unique(model, f)] if f.is_unique else []
        if f.is_list:
            id_field = model.id_field
            return [
                f"CREATE TABLE {self.table(scalar_list_table(model, f))} ("
                f'"nodeId" {self.reference_type(id_field)} NOT NULL REFERENCES {table} '
                f"({ident(id_field.column)}) ON DELETE CASCADE, "
                f'"position" integer NOT NULL, '
                f'"value" {column_type(f)} NOT NULL, '
                f'PRIMARY KEY ("nodeId", "position"))'
            ]
        statements = []
        if f.is_required:
            value = literal(migration_value(f, self.new))
            statements += [
                f"ALTER TABLE {table} ADD COLUMN {ident(f.column)} {column_type(f)} NOT NULL "
                f"DEFAULT {value}",
                f"ALTER TABLE {table} ALTER COLUMN {ident(f.column)} DROP DEFAULT",
            ]
        else:
            statements.append(
                f"ALTER TABLE {table} ADD COLUMN {ident(f.column)} {column_type(f)} NULL"
            )
        if f.is_unique:
            statements.append(self.create_unique(model, f))
        return statements

    def create_unique(self, model: Model, f: Field) -> str:
        name = unique_index_name(model.table, f.column)
        return f"CREATE UNIQUE INDEX {ident(name)} ON {self.table(model.table)} ({ident(f.column)})"

    def reference_type(self, id_field: Field) -> str:
        return column_type(id_field)

    def create_sequence(self, model: Model) -> list[str]:
        """`@sequence`: its own sequence, starting at `initialValue`, as Prisma's
        createModelTable makes it (allocationSize is kept in the schema only)."""
        f = model.id_field
        if f.sequence_name is None:
            return []
        start = f.sequence_initial if f.sequence_initial is not None else 1
        return [f"CREATE SEQUENCE {self.table(f.sequence_name)} START {int(start)}"]

    def own_sequence(self, model: Model) -> list[str]:
        """The table owns its sequence, so dropping the model drops it too."""
        f = model.id_field
        if f.sequence_name is None:
            return []
        return [
            f"ALTER SEQUENCE {self.table(f.sequence_name)} OWNED BY "
            f"{self.table(model.table)}.{ident(f.column)}"
        ]

    def id_column(self, model: Model) -> str:
        f = model.id_field
        if f.type_name == "Int" and f.sequence_name is not None:
            sequence = literal(self.table(f.sequence_name))
            kind = f"integer DEFAULT nextval({sequence}::regclass)"
        elif f.type_name == "Int" and f.id_strategy in ("AUTO", "SEQUENCE"):
            kind = "SERIAL"
        else:
            kind = column_type(f)
        return f"{ident(f.column)} {kind} NOT NULL"

    # Relations --------------------------------------------------------------------------

    def drop_relation(self, relation: Relation, schema: Schema) -> list[str]:
        if relation.link == "TABLE":
            return [f"DROP TABLE IF EXISTS {self.table(relation.table)}"]
        holder = schema.model(relation.inline_model or "")
        if holder is None:
            return []
        return [
            f"ALTER TABLE {self.table(holder.table)} DROP COLUMN IF EXISTS "
            f"{ident(relation.inline_column or '')}"
        ]

    def create_relation(self, relation: Relation) -> list[str]:
        model_a = self.new.model(relation.model_a)
        model_b = self.new.model(relation.model_b)
        assert model_a is not None and model_b is not None
        if relation.link == "TABLE":
            table = self.table(relation.table)
            a, b = ident(relation.column_a), ident(relation.column_b)
            return [
                f"CREATE TABLE {table} ("
                f"{a} {self.reference_type(model_a.id_field)} NOT NULL REFERENCES "
                f"{self.table(model_a.table)} ({ident(model_a.id_field.column)}) ON DELETE CASCADE, "
                f"{b} {self.reference_type(model_b.id_field)} NOT NULL REFERENCES "
                f"{self.table(model_b.table)} ({ident(model_b.id_field.column)}) ON DELETE CASCADE)",
                f"CREATE UNIQUE INDEX {ident(f'{relation.table}_AB_unique')} ON {table} ({a}, {b})",
                f"CREATE INDEX {ident(f'{relation.table}_B')} ON {table} ({b})",
            ]
        holder = self.new.model(relation.inline_model or "")
        assert holder is not None
        target = model_b if holder.name == model_a.name else model_a
        if relation.model_a == relation.model_b:
            target = holder
        column = ident(relation.inline_column or "")
        return [
            f"ALTER TABLE {self.table(holder.table)} ADD COLUMN {column} "
            f"{self.reference_type(target.id_field)} NULL REFERENCES {self.table(target.table)} "
            f"({ident(target.id_field.column)}) ON DELETE SET NULL",
            f"CREATE INDEX {ident(index_name(holder.table, relation.inline_column or '', '_FK'))} ON "
            f"{self.table(holder.table)} ({column})",
        ]

    def relation_is_column_rename(self, before: Relation, after: Relation) -> bool:
        """An inline relation whose field was renamed keeps its data: rename the column."""
        back = {new: old for new, old in self.renames.items()}
        return (
            before.link == after.link == "INLINE"
            and before.inline_model == back.get(after.inline_model or "", after.inline_model)
            and self.same_models(before, after)
        )

    def same_models(self, before: Relation, after: Relation) -> bool:
        back = {new: old for new, old in self.renames.items()}
        now = {back.get(after.model_a, after.model_a), back.get(after.model_b, after.model_b)}
        return now == {before.model_a, before.model_b}

    def keep_link_table(self, before: Relation, after: Relation) -> list[str]:
        """A link table that continues under a new name or with renamed models keeps its rows:
        rename it (and its indexes), and swap its columns when a model rename swapped A and B."""
        statements = []
        if before.table != after.table:
            statements.append(
                f"ALTER TABLE {self.table(before.table)} RENAME TO {ident(after.table)}"
            )
            for suffix in ("_AB_unique", "_B"):
                statements.append(
                    f"ALTER INDEX IF EXISTS {self.index(before.table + suffix)} "
                    f"RENAME TO {ident(after.table + suffix)}"
                )
        back = {new: old for new, old in self.renames.items()}
        swapped = before.model_a != before.model_b and back.get(after.model_a) == before.model_b
        targets = (after.column_b, after.column_a) if swapped else (after.column_a, after.column_b)
        moves = [
            (old, new)
            for old, new in zip((before.column_a, before.column_b), targets, strict=True)
            if old != new
        ]
        table = self.table(after.table)
        # Through temporary names, so that swapping A and B never collides.
        for i, (old, _) in enumerate(moves):
            statements.append(f"ALTER TABLE {table} RENAME COLUMN {ident(old)} TO {ident(f'_{i}')}")
        for i, (_, new) in enumerate(moves):
            statements.append(f"ALTER TABLE {table} RENAME COLUMN {ident(f'_{i}')} TO {ident(new)}")
        return statements

    def needs_recreate(self, before: Field, after: Field) -> bool:
        """A change of Prisma's type identifier (String to Enum included) or of list-ness drops
        the column and creates it again, as Prisma's Postgres connector does: the values become
        null, or the migration value when the field is required (with a warning)."""
        if before.kind == "relation" or after.kind == "relation":
            return False
        if before.is_list != after.is_list:
            return True
        return _type_identifier(before) != _type_identifier(after)

    # The whole migration ----------------------------------------------------------------

    def compile(self, steps: list[Step]) -> list[str]:
        drops: list[str] = []
        renames: list[str] = []
        alters: list[str] = []
        creates: list[str] = []
        relations: list[str] = []
        self.created = {s.name for s in steps if isinstance(s, CreateModel)}
        for step in steps:
            if isinstance(step, DeleteRelation):
                relation = self.old.relation(step.name)
                if relation is not None:
                    drops += self.drop_relation(relation, self.old)
            elif isinstance(step, UpdateRelation):
                before = self.old.relation(step.name)
                after = self.new.relation(step.new_name or step.name)
                assert before is not None and after is not None
                if self.relation_is_column_rename(before, after):
                    holder = self.new.model(after.inline_model or "")
                    assert holder is not None
                    if before.inline_column != after.inline_column:
                        renames.append(
                            f"ALTER TABLE {self.table(holder.table)} RENAME COLUMN "
                            f"{ident(before.inline_column or '')} TO "
                            f"{ident(after.inline_column or '')}"
                        )
                elif before.link == after.link == "TABLE" and self.same_models(before, after):
                    renames += self.keep_link_table(before, after)
                else:
                    drops += self.drop_relation(before, self.old)
                    relations += self.create_relation(after)
            elif isinstance(step, CreateRelation):
                relation = self.new.relation(step.name)
                assert relation is not None
                relations += self.create_relation(relation)
            elif isinstance(step, DeleteModel):
                model = self.old.model(step.name)
                assert model is not None
                for f in model.fields:
                    if f.is_scalar_list:
                        drops.append(
                            f"DROP TABLE IF EXISTS {self.table(scalar_list_table(model, f))}"
                        )
                drops.append(f"DROP TABLE IF EXISTS {self.table(model.table)} CASCADE")
            elif isinstance(step, DeleteField):
                new_model = self.new.model(step.model)
                assert new_model is not None
                old_model = self.old_model_for(new_model)
                assert old_model is not None
                old_field = old_model.field(step.name)
                assert old_field is not None
                drops += self.drop_field(old_model, old_field)
            elif isinstance(step, UpdateModel):
                renames += self.rename_model(step)
            elif isinstance(step, CreateModel):
                model = self.new.model(step.name)
                assert model is not None
                creates += self.create_sequence(model)
                creates.append(self.create_table(model))
                creates += self.own_sequence(model)
            elif isinstance(step, CreateField):
                model = self.new.model(step.model)
                assert model is not None
                new_field = model.field(step.name)
                assert new_field is not None
                creates += self.create_field(model, new_field)
            elif isinstance(step, UpdateField):
                d, r, a, c = self.update_field(step)
                drops += d
                renames += r
                alters += a
                creates += c
        return drops + renames + alters + creates + relations

    def rename_model(self, step: UpdateModel) -> list[str]:
        old_model = self.old.model(step.name)
        new_model = self.new.model(step.new_name)
        assert old_model is not None and new_model is not None
        statements = []
        if old_model.table != new_model.table:
            statements.append(
                f"ALTER TABLE {self.table(old_model.table)} RENAME TO {ident(new_model.table)}"
            )
        for f in old_model.fields:
            if f.is_scalar_list:
                statements.append(
                    f"ALTER TABLE IF EXISTS {self.table(scalar_list_table(old_model, f))} "
                    f"RENAME TO {ident(scalar_list_table(new_model, f))}"
                )
            elif f.is_unique and old_model.table != new_model.table:
                statements.append(
                    f"ALTER INDEX IF EXISTS {self.index(unique_index_name(old_model.table, f.column))}"
                    f" RENAME TO {ident(unique_index_name(new_model.table, f.column))}"
                )
        return statements

    def update_field(self, step: UpdateField) -> tuple[list[str], list[str], list[str], list[str]]:
        new_model = self.new.model(step.model)
        assert new_model is not None
        old_model = self.old_model_for(new_model)
        assert old_model is not None
        before = old_model.field(step.name)
        after_name = next(
            new for new, old in field_renames(old_model, new_model).items() if old == step.name
        )
        after = new_model.field(after_name)
        assert before is not None and after is not None
        if before.kind == "relation" or after.kind == "relation":
            if before.kind != after.kind:
                return (
                    self.drop_field(old_model, before),
                    [],
                    [],
                    self.create_field(new_model, after),
                )
            return [], [], [], []
        if self.needs_recreate(before, after):
            return self.drop_field(old_model, before), [], [], self.create_field(new_model, after)
        renames: list[str] = []
        alters: list[str] = []
        table = self.table(new_model.table)
        if after.is_list:
            if before.name != after.name:
                renames.append(
                    f"ALTER TABLE {self.table(scalar_list_table(new_model, before))} "
                    f"RENAME TO {ident(scalar_list_table(new_model, after))}"
                )
            return [], renames, [], []
        if before.column != after.column:
            renames.append(
                f"ALTER TABLE {table} RENAME COLUMN {ident(before.column)} TO {ident(after.column)}"
            )
            if before.is_unique and after.is_unique:
                old_index = unique_index_name(new_model.table, before.column)
                renames.append(
                    f"ALTER INDEX IF EXISTS {self.index(old_index)} "
                    f"RENAME TO {ident(unique_index_name(new_model.table, after.column))}"
                )
        if after.is_required and not before.is_required:
            alters += [
                f"UPDATE {table} SET {ident(after.column)} = "  # noqa: S608 - quoted identifiers
                f"{literal(migration_value(after, self.new))} WHERE {ident(after.column)} IS NULL",
                f"ALTER TABLE {table} ALTER COLUMN {ident(after.column)} SET NOT NULL",
            ]
        elif before.is_required and not after.is_required and not after.is_id:
            alters.append(f"ALTER TABLE {table} ALTER COLUMN {ident(after.column)} DROP NOT NULL")
        if before.is_unique and not after.is_unique:
            index = unique_index_name(new_model.table, after.column)
            alters.append(f"DROP INDEX IF EXISTS {self.index(index)}")
        elif after.is_unique and not before.is_unique:
            alters.append(self.create_unique(new_model, after))
        return [], renames, alters, []


def migration_sql(schema_name: str, old: Schema, new: Schema, steps: list[Step]) -> list[str]:
    """The DDL that applies `steps` to the service schema `schema_name`."""
    return _Compiler(schema_name, old, new).compile(steps)
