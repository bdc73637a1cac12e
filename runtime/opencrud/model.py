"""The datamodel as the generated API sees it: fields paired with their opposite fields.

`runtime.datamodel` stores relations once (`Relation` with `field_a`/`field_b`); the API needs,
for every relation field, the field on the other side (or none, for one-sided relations) and how
the two rows are linked in PostgreSQL (reference 7). This module derives both once per schema so
that the schema generator and the SQL compiler never search for them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import field as dc_field
from functools import cached_property

from runtime.datamodel.schema import Field, Model, Relation, Schema
from runtime.names import scalar_list_table


@dataclass(eq=False)
class ApiField:
    """One field of a model type, with the facts `prisma-datamodel` attaches to it."""

    model: ApiModel
    field: Field
    related: ApiField | None = None
    relation: Relation | None = None
    target_model: ApiModel | None = None
    # The facts below are read tens of thousands of times while the schema of a large datamodel
    # is generated: plain attributes, set once from `field`.
    name: str = dc_field(init=False)
    type_name: str = dc_field(init=False)
    column: str = dc_field(init=False)
    is_relation: bool = dc_field(init=False)
    is_enum: bool = dc_field(init=False)
    is_scalar: bool = dc_field(init=False)
    is_list: bool = dc_field(init=False)
    # Lists are never "required" in Prisma's model: `[T!]!` is a list, not a NonNull.
    is_required: bool = dc_field(init=False)
    is_id: bool = dc_field(init=False)
    is_unique: bool = dc_field(init=False)
    is_created_at: bool = dc_field(init=False)
    is_updated_at: bool = dc_field(init=False)
    is_read_only: bool = dc_field(init=False)

    def __post_init__(self) -> None:
        f = self.field
        self.name = f.name
        self.type_name = f.type_name
        self.column = f.column
        self.is_relation = f.kind == "relation"
        self.is_enum = f.kind == "enum"
        self.is_scalar = not self.is_relation
        self.is_list = f.is_list
        self.is_required = f.is_required and not f.is_list
        self.is_id = f.is_id
        self.is_unique = f.is_id or f.is_unique
        self.is_created_at = f.behaviour == "createdAt"
        self.is_updated_at = f.behaviour == "updatedAt"
        self.is_read_only = self.is_id or self.is_created_at or self.is_updated_at

    @cached_property
    def generator_related(self) -> ApiField | None:
        """The opposite field as `prisma-datamodel` pairs it, for naming input types.

        Upstream pairs a named one-sided self relation with the field itself (it looks for the
        first field carrying the same relation name), so `bestFriend: Person @relation(name:
        "BestFriend")` gets `PersonCreateOneWithoutBestFriendInput`. The SQL side must not
        believe that, hence a separate property.
        """
        if self.related is not None:
            return self.related
        r = self.relation
        if (
            r is not None
            and r.model_a == r.model_b
            and (r.field_a is None or r.field_b is None)
            and r.name != f"{r.model_a}To{r.model_b}"[:54]
        ):
            return self
        return None

    @property
    def target(self) -> ApiModel:
        """The related model of a relation field."""
        assert self.target_model is not None
        return self.target_model

    @property
    def list_table(self) -> str:
        return scalar_list_table(self.model.model, self.field)

    # How the relation is stored, seen from this field's model ------------------------------

    @property
    def is_inline_here(self) -> bool:
        """The foreign key is a column of this field's own table."""
        r = self.relation
        if r is None or r.link != "INLINE":
            return False
        if r.model_a == r.model_b:  # self relation: the column belongs to the to-one field
            return r.inline_column == self.column and not self.is_list
        return r.inline_model == self.model.name

    @property
    def is_inline_there(self) -> bool:
        """The foreign key is a column of the related table pointing back at this model."""
        r = self.relation
        return r is not None and r.link == "INLINE" and not self.is_inline_here

    @property
    def link_columns(self) -> tuple[str, str]:
        """(column holding this model's id, column holding the related id) in the link table."""
        r = self.relation
        assert r is not None
        a, b = r.column_a, r.column_b
        if r.model_a == r.model_b:
            return (a, b) if self.name == r.field_a else (b, a)
        return (a, b) if self.model.name == r.model_a else (b, a)

    @property
    def inline_column(self) -> str:
        r = self.relation
        assert r is not None and r.inline_column is not None
        return r.inline_column


@dataclass(eq=False)
class ApiModel:
    model: Model
    fields: list[ApiField] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def table(self) -> str:
        return self.model.table

    @cached_property
    def id_field(self) -> ApiField:
        return next(f for f in self.fields if f.is_id)

    def field(self, name: str) -> ApiField | None:
        return next((f for f in self.fields if f.name == name), None)

    @cached_property
    def by_name(self) -> dict[str, ApiField]:
        return {f.name: f for f in self.fields}

    @cached_property
    def scalar_fields(self) -> list[ApiField]:
        return [f for f in self.fields if f.is_scalar]

    @cached_property
    def relation_fields(self) -> list[ApiField]:
        return [f for f in self.fields if f.is_relation]


@dataclass(eq=False)
class ApiSchema:
    schema: Schema
    models: dict[str, ApiModel]
    enums: dict[str, tuple[str, ...]]

    def model(self, name: str) -> ApiModel:
        return self.models[name]

    def one_sided_to(self, model: ApiModel) -> list[ApiField]:
        """Relation fields of any model pointing at `model` with no field on `model`'s side."""
        return self._one_sided.get(model.name, [])

    @cached_property
    def _one_sided(self) -> dict[str, list[ApiField]]:
        found: dict[str, list[ApiField]] = {}
        for m in self.models.values():
            for f in m.relation_fields:
                if f.related is None and f.relation is not None:
                    found.setdefault(f.type_name, []).append(f)
        return found


def api_schema(schema: Schema) -> ApiSchema:
    """Pair every relation field with its opposite field and its stored relation."""
    models = {m.name: ApiModel(m) for m in schema.models}
    for api_model in models.values():
        api_model.fields = [ApiField(api_model, f) for f in api_model.model.fields]
    relations = {r.name: r for r in schema.relations}
    for api_model in models.values():
        for f in api_model.fields:
            if not f.is_relation:
                continue
            f.target_model = models[f.type_name]
            relation = relations.get(f.field.relation_name or "")
            f.relation = relation
            if relation is None:
                continue
            if relation.model_a == relation.model_b:
                other = relation.field_b if f.name == relation.field_a else relation.field_a
                other_model = api_model
            else:
                is_a = relation.model_a == api_model.name
                other = relation.field_b if is_a else relation.field_a
                other_model = models[relation.model_b if is_a else relation.model_a]
            f.related = other_model.field(other) if other else None
    return ApiSchema(schema, models, {e.name: e.values for e in schema.enums})
