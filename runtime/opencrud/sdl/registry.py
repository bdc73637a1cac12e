"""Type definitions, the type registry, field shapes and filters of the schema generator.

See `runtime.opencrud.sdl` for what the generator reproduces and why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from runtime.opencrud.model import ApiField, ApiModel, ApiSchema

BUILT_IN_SCALARS = frozenset({"ID", "String", "Int", "Float", "Boolean"})
NO_ARGUMENTS: Mapping[str, str] = MappingProxyType({})


class FieldDef(NamedTuple):
    """A field's type and its arguments' types, as printed (a tuple: a 30-type datamodel
    has ten thousand of them)."""

    type: str
    args: Mapping[str, str] = NO_ARGUMENTS


class TypeDef:
    """A generated type: its kind, name, interfaces and fields (or enum values). The fields
    are built when first read (`build`, given at registration): a request to a new datamodel
    reads a few dozen of its hundreds of types (see `Registry.complete`)."""

    __slots__ = ("_build", "_fields", "_values", "interfaces", "kind", "name")

    def __init__(
        self,
        kind: str,  # "type", "input", "enum", "interface", "scalar"
        name: str,
        build: Callable[[], Any],
    ) -> None:
        self.kind = kind
        self.name = name
        self.interfaces: list[str] = []
        self._fields: dict[str, FieldDef] = {}
        self._values: list[str] = []
        self._build: Callable[[], Any] | None = build

    @property
    def built(self) -> bool:
        return self._build is None

    @property
    def fields(self) -> dict[str, FieldDef]:
        if self._build is not None:
            self.build()
        return self._fields

    @property
    def values(self) -> list[str]:
        if self._build is not None:
            self.build()
        return self._values

    def build(self) -> None:
        """Fill the fields (or values) in, once; the build registers the types they name."""
        build, self._build = self._build, None
        if build is None:
            return
        result = build()
        if isinstance(result, dict):
            self._fields = result
        elif isinstance(result, list):
            self._values = result

    def sdl(self) -> str:
        if self.kind == "scalar":
            return f"scalar {self.name}"
        if self.kind == "enum":
            body = "\n".join(f"  {v}" for v in self.values)
            return f"enum {self.name} {{\n{body}\n}}"
        lines = []
        for name, f in self.fields.items():
            args = ", ".join(f"{a}: {t}" for a, t in f.args.items())
            lines.append(f"  {name}({args}): {f.type}" if args else f"  {name}: {f.type}")
        implements = f" implements {' & '.join(self.interfaces)}" if self.interfaces else ""
        return f"{self.kind} {self.name}{implements} {{\n" + "\n".join(lines) + "\n}"


def list_of(type_name: str) -> str:
    return f"[{type_name}!]"


def required(type_name: str, condition: bool = True) -> str:
    return f"{type_name}!" if condition else type_name


class Registry:
    """Types registered on first reference, field shapes and field sets (upstream base classes)."""

    def __init__(self, api: ApiSchema, *, node_interface: bool) -> None:
        self.api = api
        self.node_interface = node_interface
        self.types: dict[str, TypeDef] = {}
        self._unbuilt: list[TypeDef] = []  # registered, fields not built yet (or since built)
        self._answers: dict[tuple[str, int], tuple[list[ApiField], Any]] = {}

    # Registry -----------------------------------------------------------------------------

    def _register(self, kind: str, name: str, build: Callable[[], Any]) -> str:
        """Register `name` once; `build` fills its fields when they are first read (a type
        can then name itself, and a type nobody reads costs a registration)."""
        if name not in self.types:
            type_def = self.types[name] = TypeDef(kind, name, build)
            self._unbuilt.append(type_def)
        return name

    def complete(self) -> None:
        """Build every type's fields, and so register every reachable type: what `types`
        holds afterwards is the whole schema."""
        unbuilt = self._unbuilt
        while unbuilt:
            unbuilt.pop().build()

    def scalar(self, f: ApiField) -> str:
        name = f.type_name
        if f.is_enum:
            values = list(self.api.enums[name])
            return self._register("enum", name, lambda: values)
        return self.named_scalar(name)

    def named_scalar(self, name: str) -> str:
        if name not in BUILT_IN_SCALARS:
            self._register("scalar", name, lambda: None)
        return name

    # Field shapes (scalarTypeGenerator) -----------------------------------------------------

    def force_optional(self, f: ApiField) -> str:
        return list_of(self.scalar(f)) if f.is_list else self.scalar(f)

    def output_scalar(self, f: ApiField) -> str:
        return required(self.force_optional(f), f.is_required or f.is_list)

    def create_scalar(self, f: ApiField) -> str:
        if f.is_id and f.field.id_strategy == "NONE":
            is_required = True
        elif f.is_id and f.field.id_strategy == "AUTO":
            is_required = False
        else:
            is_required = (f.is_required or f.is_list) and f.field.default is None
        return required(self.force_optional(f), is_required)

    # Field sets (TypeFromModelGenerator) ----------------------------------------------------

    # The generator asks these of the same few lists (a model's fields) thousands of times for
    # a large datamodel; each answer is kept with the list it is about, so an id is never
    # reused for another list while its answer is kept.

    def _memo(self, kind: str, fields: list[ApiField], answer: Callable[[], Any]) -> Any:
        key = (kind, id(fields))
        kept = self._answers.get(key)
        if kept is None or kept[0] is not fields:
            kept = self._answers[key] = (fields, answer())
        return kept[1]

    def create_fields(self, fields: list[ApiField]) -> list[ApiField]:
        return self._memo(  # type: ignore[no-any-return]
            "create",
            fields,
            lambda: [
                f
                for f in fields
                if not f.is_read_only or (f.is_id and f.field.id_strategy in ("AUTO", "NONE"))
            ],
        )

    def writeable(self, fields: list[ApiField]) -> list[ApiField]:
        return self._memo("writeable", fields, lambda: [f for f in fields if not f.is_read_only])  # type: ignore[no-any-return]

    def has_unique(self, fields: list[ApiField]) -> bool:
        return self._memo("unique", fields, lambda: any(f.is_unique for f in fields))  # type: ignore[no-any-return]

    @staticmethod
    def has_except(fields: list[ApiField], name: str) -> bool:
        return any(f.name != name for f in fields)

    @staticmethod
    def back(rel: ApiField) -> ApiField:
        assert rel.generator_related is not None
        return rel.generator_related

    # Filters and ordering -------------------------------------------------------------------

    def empty_where_unique(self, m: ApiModel, rel: ApiField | None = None) -> bool:
        return not self.has_unique(m.fields)

    def where_unique(self, m: ApiModel) -> str:
        return self._register(
            "input",
            f"{m.name}WhereUniqueInput",
            lambda: {
                f.name: FieldDef(self.force_optional(f)) for f in m.scalar_fields if f.is_unique
            },
        )

    def scalar_filters(self, f: ApiField) -> dict[str, FieldDef]:
        if f.is_list:
            return {}
        t = self.scalar(f)
        if f.is_enum:
            suffixes = ["", "_not", "_in", "_not_in"]
        elif f.type_name in ("String", "ID", "UUID"):
            suffixes = ["", "_not", "_in", "_not_in", "_lt", "_lte", "_gt", "_gte"]
            suffixes += ["_contains", "_not_contains", "_starts_with", "_not_starts_with"]
            suffixes += ["_ends_with", "_not_ends_with"]
        elif f.type_name in ("Int", "Float", "DateTime"):
            suffixes = ["", "_not", "_in", "_not_in", "_lt", "_lte", "_gt", "_gte"]
        elif f.type_name == "Boolean":
            suffixes = ["", "_not"]
        else:
            suffixes = []
        return {
            f.name + s: FieldDef(list_of(t) if s in ("_in", "_not_in") else t) for s in suffixes
        }

    def _where_fields(self, m: ApiModel, name: str, relations: bool) -> dict[str, FieldDef]:
        fields: dict[str, FieldDef] = {}
        for f in m.fields:
            if f.is_scalar:
                fields.update(self.scalar_filters(f))
            elif relations:
                target = self.where(self.api.model(f.type_name))
                if f.is_list:
                    for suffix in ("_every", "_some", "_none"):
                        fields[f.name + suffix] = FieldDef(target)
                else:
                    fields[f.name] = FieldDef(target)
        for op in ("AND", "OR", "NOT"):
            fields[op] = FieldDef(list_of(name))
        return fields

    def where(self, m: ApiModel) -> str:
        name = f"{m.name}WhereInput"
        return self._register("input", name, lambda: self._where_fields(m, name, True))

    def empty_scalar_where(self, m: ApiModel, rel: ApiField | None = None) -> bool:
        return not m.scalar_fields

    def scalar_where(self, m: ApiModel) -> str:
        name = f"{m.name}ScalarWhereInput"
        return self._register("input", name, lambda: self._where_fields(m, name, False))

    def order_by(self, m: ApiModel) -> str:
        def build() -> list[str]:
            values = []
            for f in m.scalar_fields:
                if not f.is_list:
                    values += [f"{f.name}_ASC", f"{f.name}_DESC"]
            return values

        return self._register("enum", f"{m.name}OrderByInput", build)

    def many_arguments(self, m: ApiModel) -> dict[str, str]:
        return {
            "where": self.where(m),
            "orderBy": self.order_by(m),
            "skip": "Int",
            "after": "String",
            "before": "String",
            "first": "Int",
            "last": "Int",
        }
