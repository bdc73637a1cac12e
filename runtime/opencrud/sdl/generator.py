"""Output types, subscriptions and the root types; the entry points of the generator."""

from __future__ import annotations

from runtime.opencrud.model import ApiModel, ApiSchema
from runtime.opencrud.naming import camel_case, plural
from runtime.opencrud.sdl.inputs import WriteInputs
from runtime.opencrud.sdl.registry import FieldDef, TypeDef, list_of, required


class Generator(WriteInputs):
    # Output types ---------------------------------------------------------------------------

    def model_type(self, m: ApiModel) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {}
            for f in m.fields:
                if f.is_scalar:
                    fields[f.name] = FieldDef(self.output_scalar(f))
                    continue
                target = self.api.model(f.type_name)
                type_name = self.model_type(target)
                if f.is_list:
                    fields[f.name] = FieldDef(list_of(type_name), self.many_arguments(target))
                else:
                    fields[f.name] = FieldDef(required(type_name, f.is_required))
            return fields

        name = self._register("type", m.name, build)
        id_field = m.field("id")
        if self.node_interface and id_field is not None and id_field.type_name == "ID":
            self.types[name].interfaces = [self.node()]
        return name

    def node(self) -> str:
        return self._register("interface", "Node", lambda: {"id": FieldDef("ID!")})

    def page_info(self) -> str:
        return self._register(
            "type",
            "PageInfo",
            lambda: {
                "hasNextPage": FieldDef("Boolean!"),
                "hasPreviousPage": FieldDef("Boolean!"),
                "startCursor": FieldDef("String"),
                "endCursor": FieldDef("String"),
            },
        )

    def connection(self, m: ApiModel) -> str:
        def build() -> dict[str, FieldDef]:
            return {
                "pageInfo": FieldDef(required(self.page_info())),
                "edges": FieldDef(f"[{self.edge(m)}]!"),
                "aggregate": FieldDef(required(self.aggregate(m))),
            }

        return self._register("type", f"{m.name}Connection", build)

    def edge(self, m: ApiModel) -> str:
        return self._register(
            "type",
            f"{m.name}Edge",
            lambda: {"node": FieldDef(required(self.model_type(m))), "cursor": FieldDef("String!")},
        )

    def aggregate(self, m: ApiModel) -> str:
        return self._register("type", f"Aggregate{m.name}", lambda: {"count": FieldDef("Int!")})

    def batch_payload(self) -> str:
        return self._register(
            "type", "BatchPayload", lambda: {"count": FieldDef(f"{self.named_scalar('Long')}!")}
        )

    # Subscriptions --------------------------------------------------------------------------

    def mutation_type(self) -> str:
        return self._register("enum", "MutationType", lambda: ["CREATED", "UPDATED", "DELETED"])

    def previous_values(self, m: ApiModel) -> str:
        return self._register(
            "type",
            f"{m.name}PreviousValues",
            lambda: {f.name: FieldDef(self.output_scalar(f)) for f in m.scalar_fields},
        )

    def subscription_payload(self, m: ApiModel) -> str:
        def build() -> dict[str, FieldDef]:
            fields = {
                "mutation": FieldDef(required(self.mutation_type())),
                "node": FieldDef(self.model_type(m)),
                "updatedFields": FieldDef("[String!]"),
            }
            if m.scalar_fields:
                fields["previousValues"] = FieldDef(self.previous_values(m))
            return fields

        return self._register("type", f"{m.name}SubscriptionPayload", build)

    def subscription_where(self, m: ApiModel) -> str:
        name = f"{m.name}SubscriptionWhereInput"

        def build() -> dict[str, FieldDef]:
            fields = {
                "mutation_in": FieldDef(list_of(self.mutation_type())),
                "updatedFields_contains": FieldDef("String"),
                "updatedFields_contains_every": FieldDef("[String!]"),
                "updatedFields_contains_some": FieldDef("[String!]"),
                "node": FieldDef(self.where(m)),
            }
            for op in ("AND", "OR", "NOT"):
                fields[op] = FieldDef(list_of(name))
            return fields

        return self._register("input", name, build)

    # Roots ----------------------------------------------------------------------------------

    def generate(self) -> None:
        """Register the root types (their fields are built when first read, like any type's)
        and every model's type (so the `Node` interface's implementations are known)."""
        models = sorted(self.api.models.values(), key=lambda m: m.name)
        for m in models:
            self.model_type(m)
        self._register("type", "Query", lambda: self._query_fields(models))
        if self.node_interface:
            # The Scala server declares `scalar Json` whether or not a field uses it; every
            # schema it served in prisma-generate-schema's blackbox cases does (reference 5.9).
            self.named_scalar("Json")
        if models:
            self._register("type", "Mutation", lambda: self._mutation_fields(models))
            self._register("type", "Subscription", lambda: self._subscription_fields(models))

    def _query_fields(self, models: list[ApiModel]) -> dict[str, FieldDef]:
        query: dict[str, FieldDef] = {}
        for m in models:
            name = m.name
            many = self.many_arguments(m)
            if not self.empty_where_unique(m):
                query[camel_case(name)] = FieldDef(
                    self.model_type(m), {"where": required(self.where_unique(m))}
                )
            query[camel_case(plural(name))] = FieldDef(f"[{self.model_type(m)}]!", many)
            query[camel_case(plural(name)) + "Connection"] = FieldDef(
                required(self.connection(m)), dict(many)
            )
        query["node"] = FieldDef(self.node(), {"id": "ID!"})
        return query

    def _mutation_fields(self, models: list[ApiModel]) -> dict[str, FieldDef]:
        mutation: dict[str, FieldDef] = {}
        for m in models:
            name = m.name
            create_args = {} if self.empty_create(m) else {"data": required(self.create(m))}
            mutation[f"create{name}"] = FieldDef(required(self.model_type(m)), create_args)
            if not self.empty_update(m) and not self.empty_where_unique(m):
                mutation[f"update{name}"] = FieldDef(
                    self.model_type(m),
                    {"data": required(self.update(m)), "where": required(self.where_unique(m))},
                )
            if not self.empty_update_many_data(m):
                mutation[f"updateMany{plural(name)}"] = FieldDef(
                    required(self.batch_payload()),
                    {"data": required(self.update_many_mutation(m)), "where": self.where(m)},
                )
            if not (self.empty_create(m) or self.empty_update(m) or self.empty_where_unique(m)):
                mutation[f"upsert{name}"] = FieldDef(
                    required(self.model_type(m)),
                    {
                        "where": required(self.where_unique(m)),
                        "create": required(self.create(m)),
                        "update": required(self.update(m)),
                    },
                )
            if not self.empty_where_unique(m):
                mutation[f"delete{name}"] = FieldDef(
                    self.model_type(m), {"where": required(self.where_unique(m))}
                )
            mutation[f"deleteMany{plural(name)}"] = FieldDef(
                required(self.batch_payload()), {"where": self.where(m)}
            )
        return mutation

    def _subscription_fields(self, models: list[ApiModel]) -> dict[str, FieldDef]:
        return {
            camel_case(m.name): FieldDef(
                self.subscription_payload(m), {"where": self.subscription_where(m)}
            )
            for m in models
        }


def opencrud_types(api: ApiSchema, *, node_interface: bool = True) -> dict[str, TypeDef]:
    """Every type of the generated schema by name."""
    generator = lazy_types(api, node_interface=node_interface)
    generator.complete()
    return generator.types


def lazy_types(api: ApiSchema, *, node_interface: bool = True) -> Generator:
    """The generator with the root types generated: its `types` holds what they name, and
    grows as fields are read; `complete()` makes it the whole schema."""
    generator = Generator(api, node_interface=node_interface)
    generator.generate()
    return generator


def opencrud_sdl(api: ApiSchema, *, node_interface: bool = True) -> str:
    """The printed schema, types sorted by name as `printSchema` does."""
    types = opencrud_types(api, node_interface=node_interface)
    roots = [n for n in ("Query", "Mutation", "Subscription") if n in types]
    schema_block = (
        "schema {\n" + "\n".join(f"  {n.lower()}: {n}" for n in roots) + "\n}\n\n"
        if "Mutation" in types
        else ""
    )
    return schema_block + "\n\n".join(types[n].sdl() for n in sorted(types)) + "\n"
