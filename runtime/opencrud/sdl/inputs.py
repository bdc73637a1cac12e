"""Input types of mutations: create, update and upsert, nested ones included."""

from __future__ import annotations

from runtime.opencrud.model import ApiField, ApiModel
from runtime.opencrud.naming import capitalize
from runtime.opencrud.sdl.registry import FieldDef, Registry, list_of, required


class WriteInputs(Registry):
    """One method per upstream input generator; `empty_*` mirrors its `wouldBeEmpty`."""

    # Create inputs --------------------------------------------------------------------------

    def create_scalar_input(self, m: ApiModel, f: ApiField) -> str | None:
        if (
            f.is_read_only and not (f.is_id and f.field.id_strategy in ("AUTO", "NONE"))
        ) or f.is_created_at:
            return None
        if f.is_list:
            name = f"{m.name}Create{f.name}Input"
            return self._register("input", name, lambda: {"set": FieldDef(list_of(self.scalar(f)))})
        return self.create_scalar(f)

    def create_relation_input(self, f: ApiField) -> str | None:
        target = self.api.model(f.type_name)
        if f.generator_related is not None:
            if f.is_list:
                empty, make = self.empty_create_many_without, self.create_many_without
            else:
                empty, make = self.empty_create_many_without, self.create_one_without
        elif f.is_list:
            empty, make = self.empty_create_one_or_many, self.create_many
        else:
            empty, make = self.empty_create_one_or_many, self.create_one
        if empty(target, f):
            return None
        return required(make(target, f), f.is_required)

    def empty_create(self, m: ApiModel, rel: ApiField | None = None) -> bool:
        return not self.create_fields(m.scalar_fields) and all(
            self.create_relation_input(f) is None for f in m.relation_fields
        )

    def create(self, m: ApiModel, rel: ApiField | None = None) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            for f in self.create_fields(m.fields):
                t = self.create_scalar_input(m, f) if f.is_scalar else self.create_relation_input(f)
                if t is not None:
                    fields[f.name] = FieldDef(t)
            return fields

        return self._register("input", f"{m.name}CreateInput", build)

    def empty_create_one_or_many(self, m: ApiModel, rel: ApiField) -> bool:
        return not self.writeable(m.fields) and not self.has_unique(m.fields)

    def _create_one_or_many(self, m: ApiModel, name: str, wrap: bool) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            if self.create_fields(m.fields):
                t = self.create(m)
                fields["create"] = FieldDef(list_of(t) if wrap else t)
            if self.has_unique(m.fields):
                t = self.where_unique(m)
                fields["connect"] = FieldDef(list_of(t) if wrap else t)
            return fields

        return self._register("input", name, build)

    def create_many(self, m: ApiModel, rel: ApiField) -> str:
        return self._create_one_or_many(m, f"{m.name}CreateManyInput", True)

    def create_one(self, m: ApiModel, rel: ApiField) -> str:
        return self._create_one_or_many(m, f"{m.name}CreateOneInput", False)

    def empty_create_many_without(self, m: ApiModel, rel: ApiField) -> bool:
        return not self.has_except(
            self.writeable(m.fields), self.back(rel).name
        ) and not self.has_unique(m.fields)

    def _create_without_wrapper(self, m: ApiModel, rel: ApiField, kind: str, wrap: bool) -> str:
        back = self.back(rel).name

        def build() -> dict[str, FieldDef]:
            fields = {}
            if self.has_except(self.create_fields(m.fields), back):
                t = self.create_without(m, rel)
                fields["create"] = FieldDef(list_of(t) if wrap else t)
            if self.has_unique(m.fields):
                t = self.where_unique(m)
                fields["connect"] = FieldDef(list_of(t) if wrap else t)
            return fields

        return self._register("input", f"{m.name}Create{kind}Without{capitalize(back)}Input", build)

    def create_many_without(self, m: ApiModel, rel: ApiField) -> str:
        return self._create_without_wrapper(m, rel, "Many", True)

    def create_one_without(self, m: ApiModel, rel: ApiField) -> str:
        return self._create_without_wrapper(m, rel, "One", False)

    def empty_create_without(self, m: ApiModel, rel: ApiField) -> bool:
        return not self.has_except(self.create_fields(m.fields), self.back(rel).name)

    def create_without(self, m: ApiModel, rel: ApiField) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            for f in m.fields:
                if f.is_scalar:
                    t = self.create_scalar_input(m, f)
                elif f.generator_related is rel:
                    continue
                else:
                    t = self.create_relation_input(f)
                if t is not None:
                    fields[f.name] = FieldDef(t)
            return fields

        back = capitalize(self.back(rel).name)
        return self._register("input", f"{m.name}CreateWithout{back}Input", build)

    # Update inputs --------------------------------------------------------------------------

    def update_scalar_input(self, m: ApiModel, f: ApiField) -> str | None:
        if f.is_read_only:
            return None
        if f.is_list:
            name = f"{m.name}Update{f.name}Input"
            return self._register("input", name, lambda: {"set": FieldDef(list_of(self.scalar(f)))})
        return self.force_optional(f)

    def update_relation_input(self, f: ApiField) -> str | None:
        target = self.api.model(f.type_name)
        if f.generator_related is not None:
            if f.is_list:
                empty, make = self.empty_update_many_without, self.update_many_without
            elif f.is_required:
                empty, make = (lambda m, r: False), self.update_one_required_without
            else:
                empty, make = (lambda m, r: False), self.update_one_without
        elif f.is_list:
            empty, make = self.empty_update_many, self.update_many
        elif f.is_required:
            empty, make = (lambda m, r: False), self.update_one_required
        else:
            empty, make = (lambda m, r: False), self.update_one
        if empty(target, f):
            return None
        return make(target, f)

    def _update_fields(
        self, m: ApiModel, *, relations: bool, skip: ApiField | None = None
    ) -> dict[str, FieldDef]:
        fields = {}
        for f in m.fields:
            if f.is_scalar:
                t = self.update_scalar_input(m, f)
            elif not relations or (skip is not None and f.generator_related is skip):
                continue
            else:
                t = self.update_relation_input(f)
            if t is not None:
                fields[f.name] = FieldDef(t)
        return fields

    def empty_update(self, m: ApiModel, rel: ApiField | None = None) -> bool:
        return not self.writeable(m.fields)

    def update(self, m: ApiModel) -> str:
        return self._register(
            "input", f"{m.name}UpdateInput", lambda: self._update_fields(m, relations=True)
        )

    def update_data(self, m: ApiModel) -> str:
        return self._register(
            "input", f"{m.name}UpdateDataInput", lambda: self._update_fields(m, relations=True)
        )

    def empty_update_many_data(self, m: ApiModel, rel: ApiField | None = None) -> bool:
        return not self.writeable(m.scalar_fields)

    def update_many_data(self, m: ApiModel) -> str:
        return self._register(
            "input", f"{m.name}UpdateManyDataInput", lambda: self._update_fields(m, relations=False)
        )

    def update_many_mutation(self, m: ApiModel) -> str:
        return self._register(
            "input",
            f"{m.name}UpdateManyMutationInput",
            lambda: self._update_fields(m, relations=False),
        )

    def empty_update_many(self, m: ApiModel, rel: ApiField | None = None) -> bool:
        return (
            self.empty_create(m)
            and (self.empty_where_unique(m) or not self.writeable(m.fields))
            and self.empty_scalar_where(m)
            and self.empty_update_many_data(m)
        )

    def update_many(self, m: ApiModel, rel: ApiField) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            if not self.empty_create(m):
                fields["create"] = FieldDef(list_of(self.create(m)))
            if self.writeable(m.fields) and not self.empty_where_unique(m):
                fields["update"] = FieldDef(list_of(self.update_with_where_unique_nested(m)))
                fields["upsert"] = FieldDef(list_of(self.upsert_with_where_unique_nested(m)))
            if not self.empty_where_unique(m):
                for op in ("delete", "connect", "set", "disconnect"):
                    fields[op] = FieldDef(list_of(self.where_unique(m)))
            if not self.empty_scalar_where(m):
                fields["deleteMany"] = FieldDef(list_of(self.scalar_where(m)))
            if not self.empty_update_many_data(m):
                fields["updateMany"] = FieldDef(list_of(self.update_many_with_where_nested(m)))
            return fields

        return self._register("input", f"{m.name}UpdateManyInput", build)

    def empty_update_many_without(self, m: ApiModel, rel: ApiField) -> bool:
        return self.empty_create_without(m, rel) and self.empty_where_unique(m)

    def update_many_without(self, m: ApiModel, rel: ApiField) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            if not self.empty_create_without(m, rel):
                fields["create"] = FieldDef(list_of(self.create_without(m, rel)))
            if not self.empty_where_unique(m):
                for op in ("delete", "connect", "set", "disconnect"):
                    fields[op] = FieldDef(list_of(self.where_unique(m)))
            if not self.empty_update_with_where_unique_without(m, rel):
                fields["update"] = FieldDef(list_of(self.update_with_where_unique_without(m, rel)))
                fields["upsert"] = FieldDef(list_of(self.upsert_with_where_unique_without(m, rel)))
            if not self.empty_scalar_where(m):
                fields["deleteMany"] = FieldDef(list_of(self.scalar_where(m)))
            if not self.empty_update_many_data(m):
                fields["updateMany"] = FieldDef(list_of(self.update_many_with_where_nested(m)))
            return fields

        back = capitalize(self.back(rel).name)
        return self._register("input", f"{m.name}UpdateManyWithout{back}Input", build)

    def _update_one(self, m: ApiModel, name: str, *, optional: bool) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            if self.create_fields(m.fields):
                fields["create"] = FieldDef(self.create(m))
            if self.writeable(m.fields):
                fields["update"] = FieldDef(self.update_data(m))
                fields["upsert"] = FieldDef(self.upsert_nested(m))
            if optional:
                fields["delete"] = FieldDef(self.named_scalar("Boolean"))
                fields["disconnect"] = FieldDef(self.named_scalar("Boolean"))
            if not self.empty_where_unique(m):
                fields["connect"] = FieldDef(self.where_unique(m))
            return fields

        return self._register("input", name, build)

    def update_one(self, m: ApiModel, rel: ApiField) -> str:
        return self._update_one(m, f"{m.name}UpdateOneInput", optional=True)

    def update_one_required(self, m: ApiModel, rel: ApiField) -> str:
        return self._update_one(m, f"{m.name}UpdateOneRequiredInput", optional=False)

    def _update_one_without(self, m: ApiModel, rel: ApiField, *, optional: bool) -> str:
        back = self.back(rel).name

        def build() -> dict[str, FieldDef]:
            fields = {}
            if self.has_except(self.create_fields(m.fields), back):
                fields["create"] = FieldDef(self.create_without(m, rel))
            if self.has_except(self.writeable(m.fields), back):
                fields["create"] = FieldDef(self.create_without(m, rel))
                fields["update"] = FieldDef(self.update_without_data(m, rel))
                fields["upsert"] = FieldDef(self.upsert_without(m, rel))
            if optional:
                fields["delete"] = FieldDef(self.named_scalar("Boolean"))
                if not rel.is_required or rel.is_list:
                    fields["disconnect"] = FieldDef(self.named_scalar("Boolean"))
            if not self.empty_where_unique(m):
                fields["connect"] = FieldDef(self.where_unique(m))
            return fields

        kind = "One" if optional else "OneRequired"
        return self._register("input", f"{m.name}Update{kind}Without{capitalize(back)}Input", build)

    def update_one_without(self, m: ApiModel, rel: ApiField) -> str:
        return self._update_one_without(m, rel, optional=True)

    def update_one_required_without(self, m: ApiModel, rel: ApiField) -> str:
        return self._update_one_without(m, rel, optional=False)

    def empty_update_with_where_unique_nested(self, m: ApiModel) -> bool:
        return self.empty_update(m) or self.empty_where_unique(m)

    def update_with_where_unique_nested(self, m: ApiModel) -> str:
        return self._register(
            "input",
            f"{m.name}UpdateWithWhereUniqueNestedInput",
            lambda: {
                "where": FieldDef(required(self.where_unique(m))),
                "data": FieldDef(required(self.update_data(m))),
            },
        )

    def empty_update_without_data(self, m: ApiModel, rel: ApiField) -> bool:
        return not self.has_except(self.writeable(m.fields), self.back(rel).name)

    def update_without_data(self, m: ApiModel, rel: ApiField) -> str:
        back = capitalize(self.back(rel).name)
        return self._register(
            "input",
            f"{m.name}UpdateWithout{back}DataInput",
            lambda: self._update_fields(m, relations=True, skip=rel),
        )

    def empty_update_with_where_unique_without(self, m: ApiModel, rel: ApiField) -> bool:
        return self.empty_update_without_data(m, rel) or self.empty_where_unique(m)

    def update_with_where_unique_without(self, m: ApiModel, rel: ApiField) -> str:
        back = capitalize(self.back(rel).name)
        return self._register(
            "input",
            f"{m.name}UpdateWithWhereUniqueWithout{back}Input",
            lambda: {
                "where": FieldDef(required(self.where_unique(m))),
                "data": FieldDef(required(self.update_without_data(m, rel))),
            },
        )

    def update_many_with_where_nested(self, m: ApiModel) -> str:
        return self._register(
            "input",
            f"{m.name}UpdateManyWithWhereNestedInput",
            lambda: {
                "where": FieldDef(required(self.scalar_where(m))),
                "data": FieldDef(required(self.update_many_data(m))),
            },
        )

    # Upsert inputs --------------------------------------------------------------------------

    def upsert_nested(self, m: ApiModel) -> str:
        return self._register(
            "input",
            f"{m.name}UpsertNestedInput",
            lambda: {
                "update": FieldDef(required(self.update_data(m))),
                "create": FieldDef(required(self.create(m))),
            },
        )

    def upsert_with_where_unique_nested(self, m: ApiModel) -> str:
        return self._register(
            "input",
            f"{m.name}UpsertWithWhereUniqueNestedInput",
            lambda: {
                "where": FieldDef(required(self.where_unique(m))),
                "update": FieldDef(required(self.update_data(m))),
                "create": FieldDef(required(self.create(m))),
            },
        )

    def _upsert_without_fields(self, m: ApiModel, rel: ApiField) -> dict[str, FieldDef]:
        fields = {}
        if not self.empty_update_without_data(m, rel):
            fields["update"] = FieldDef(required(self.update_without_data(m, rel)))
        if not self.empty_create_without(m, rel):
            fields["create"] = FieldDef(required(self.create_without(m, rel)))
        return fields

    def upsert_without(self, m: ApiModel, rel: ApiField) -> str:
        back = capitalize(self.back(rel).name)
        return self._register(
            "input",
            f"{m.name}UpsertWithout{back}Input",
            lambda: self._upsert_without_fields(m, rel),
        )

    def upsert_with_where_unique_without(self, m: ApiModel, rel: ApiField) -> str:
        back = capitalize(self.back(rel).name)
        return self._register(
            "input",
            f"{m.name}UpsertWithWhereUniqueWithout{back}Input",
            lambda: {
                "where": FieldDef(required(self.where_unique(m))),
                **self._upsert_without_fields(m, rel),
            },
        )
