"""Relation inference: pair relation fields, name the relations and choose how they are stored.

Prisma's rules (`SchemaInferrer.scala`): model A is the one whose name sorts first (for a self
relation, the field whose name sorts first); an unnamed relation is called `<A>To<B>`; without an
explicit `link`, many-to-many and one-sided lists use a link table `_<Name>`, one-to-many puts
the foreign key into the table of the model with the to-one field, and one-to-one must say.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

from runtime.datamodel.schema import Field, LinkTable, Model, Relation, SchemaError

FieldRef = tuple[Model, Field]


def infer_relations(
    models: list[Model], errors: list[SchemaError], link_tables: list[LinkTable] | None = None
) -> tuple[list[Model], list[Relation]]:
    """Pair every relation field; returns the models with `relation_name` filled in."""
    tables = {t.name: t for t in link_tables or ()}
    _check_link_tables(models, tables, errors)
    named: dict[str, list[FieldRef]] = defaultdict(list)
    unnamed: dict[frozenset[str], list[FieldRef]] = defaultdict(list)
    for model in models:
        for f in model.fields:
            if f.kind != "relation":
                continue
            if f.relation_name:
                named[f.relation_name].append((model, f))
            else:
                unnamed[frozenset({model.name, f.type_name})].append((model, f))

    groups: list[tuple[str | None, list[FieldRef]]] = []
    for name, refs in named.items():
        if len(refs) > 2:
            for model, f in refs:
                errors.append(
                    SchemaError(
                        model.name,
                        f.name,
                        "A relation directive cannot appear more than twice. Relation name: "
                        f"'{name}'",
                    )
                )
            continue
        if len(refs) == 2:
            (m1, f1), (m2, f2) = refs
            if f1.type_name != m2.name or f2.type_name != m1.name:
                errors.append(
                    SchemaError(
                        m1.name,
                        f1.name,
                        f"The relation field `{f1.name}` has the type `{f1.type_name}`. But the "
                        f"other directive for this relation appeared on the type `{m2.name}`",
                    )
                )
                continue
        else:
            (m1, f1) = refs[0]
            back = [
                (m, f)
                for m, f in unnamed.get(frozenset({m1.name, f1.type_name}), [])
                if m.name == f1.type_name and f.type_name == m1.name and m.name != m1.name
            ]
            if len(back) == 1:
                errors.append(
                    SchemaError(
                        m1.name,
                        f1.name,
                        f"You are trying to set the relation '{name}' from `{m1.name}` to "
                        f"`{f1.type_name}` and are only providing a relation directive on "
                        f"`{m1.name}`. Since there is also a relation field without a relation "
                        f"directive on `{f1.type_name}` pointing towards `{m1.name}` that is "
                        f"ambiguous. Please provide the same relation directive on "
                        f"`{f1.type_name}` if this is supposed to be the same relation. If you "
                        "meant to create two separate relations without backrelations please "
                        f"provide a relation directive with a different name on `{f1.type_name}`.",
                    )
                )
                continue
        groups.append((name, refs))

    for pair, refs in unnamed.items():
        directions: dict[tuple[str, str], list[FieldRef]] = defaultdict(list)
        for model, f in refs:
            directions[(model.name, f.type_name)].append((model, f))
        is_self = len(pair) == 1
        ambiguous = any(len(v) > 1 for v in directions.values()) if not is_self else len(refs) > 1
        if ambiguous:
            for model, f in refs:
                errors.append(
                    SchemaError(
                        model.name,
                        f.name,
                        f"The relation field `{f.name}` must specify a `@relation` directive: "
                        '`@relation(name: "MyRelation")`',
                    )
                )
            continue
        groups.append((None, refs))

    relations: list[Relation] = []
    for group_name, refs in groups:
        relation = _relation(group_name, refs, errors, tables)
        if relation is None:
            continue
        if any(r.name == relation.name for r in relations):
            model, f = refs[0]
            errors.append(
                SchemaError(
                    model.name,
                    f.name,
                    f"The relation name `{relation.name}` is used by another relation too. "
                    "Please name at least one of the relations.",
                )
            )
            continue
        relations.append(relation)

    by_field: dict[tuple[str, str], str] = {}
    for relation in relations:
        if relation.field_a:
            by_field[(relation.model_a, relation.field_a)] = relation.name
        if relation.field_b:
            by_field[(relation.model_b, relation.field_b)] = relation.name
    resolved = [
        replace(
            model,
            fields=tuple(
                replace(f, relation_name=by_field.get((model.name, f.name), f.relation_name))
                if f.kind == "relation"
                else f
                for f in model.fields
            ),
        )
        for model in models
    ]
    return resolved, relations


def _check_link_tables(
    models: list[Model], tables: dict[str, LinkTable], errors: list[SchemaError]
) -> None:
    """Prisma's RelationTableDirective.postValidate: referenced, and by the right types."""
    for table in tables.values():
        using = [(m, f) for m in models for f in m.fields if f.relation_name == table.name]
        if not using:
            errors.append(
                SchemaError(
                    table.name,
                    None,
                    f"The link table `{table.name}` is not referenced in any relation field.",
                )
            )
            continue
        in_fields = {m.name for m, _ in using} | {f.type_name for _, f in using}
        if {model for _, model, _ in table.fields} != in_fields:
            errors.append(
                SchemaError(
                    table.name,
                    None,
                    f"The link table `{table.name}` is not referencing the right types.",
                )
            )


def _with_link_table(relation: Relation, table: LinkTable | None) -> Relation:
    """A TABLE relation stored in its `@relationTable`: SchemaInferrer's column choice (for a
    self relation the table's first field is side A, else the field naming model A)."""
    if table is None or relation.link != "TABLE" or len(table.fields) != 2:
        return relation
    first, second = table.fields
    if relation.model_a == relation.model_b:
        column_a, column_b = first[2], second[2]
    else:
        a = first if first[1] == relation.model_a else second
        b = second if a is first else first
        column_a, column_b = a[2], b[2]
    return replace(relation, table_name=table.table, column_a=column_a, column_b=column_b)


def _relation(
    name: str | None,
    refs: list[FieldRef],
    errors: list[SchemaError],
    tables: dict[str, LinkTable] | None = None,
) -> Relation | None:
    relation = _relation_link(name, refs, errors, tables or {})
    return (
        None if relation is None else _with_link_table(relation, (tables or {}).get(relation.name))
    )


def _relation_link(
    name: str | None, refs: list[FieldRef], errors: list[SchemaError], tables: dict[str, LinkTable]
) -> Relation | None:
    if len(refs) == 2:
        (m1, f1), (m2, f2) = refs
        if m1.name == m2.name:
            (m1, f1), (m2, f2) = sorted(refs, key=lambda r: r[1].name)
        elif m1.name > m2.name:
            (m1, f1), (m2, f2) = (m2, f2), (m1, f1)
        model_a, field_a, model_b, field_b = m1, f1, m2, f2
    else:
        (m, f) = refs[0]
        if m.name <= f.type_name:
            model_a, field_a, model_b, field_b = m, f, None, None
        else:
            model_a, field_a, model_b, field_b = None, None, m, f
    a_name = model_a.name if model_a else field_b.type_name  # type: ignore[union-attr]
    b_name = model_b.name if model_b else field_a.type_name  # type: ignore[union-attr]
    relation_name = name or f"{a_name}To{b_name}"[:54]

    present = [(m, f) for m, f in ((model_a, field_a), (model_b, field_b)) if m and f]
    links = [(m, f) for m, f in present if f.link]
    if len(links) > 1:
        (m, f), (_, other) = links
        errors.append(
            SchemaError(
                m.name,
                f.name,
                "The `link` argument must be specified only on one side of a relation. The field "
                f"`{f.name}` provides a link mode and the opposite field `{other.name}` as well.",
            )
        )
        return None
    base: dict[str, Any] = {
        "name": relation_name,
        "model_a": a_name,
        "model_b": b_name,
        "field_a": field_a.name if field_a else None,
        "field_b": field_b.name if field_b else None,
    }
    to_one = [(m, f) for m, f in present if not f.is_list]
    if not links and relation_name in tables:  # a declared link table means link: TABLE
        return Relation(**base, link="TABLE")
    if links:
        m, f = links[0]
        if f.link == "TABLE":
            return Relation(**base, link="TABLE")
        if f.is_list:
            errors.append(
                SchemaError(
                    m.name,
                    f.name,
                    f"The field `{f.name}` is a list, so the relation cannot be stored inline on "
                    "its side. Put `@relation(link: INLINE)` on the to-one field of the other "
                    "model, or use `link: TABLE`.",
                )
            )
            return None
        return Relation(**base, link="INLINE", inline_model=m.name, inline_column=f.column)
    if len(present) == 2 and len(to_one) == 2:
        m, f = present[0]
        errors.append(
            SchemaError(
                m.name,
                f.name,
                f"The field `{f.name}` must provide a relation link mode. Either specify it on "
                "this field or the opposite field. Valid values are: "
                "`@relation(link: TABLE)`,`@relation(link: INLINE)`",
            )
        )
        return None
    if len(to_one) == 1:
        m, f = to_one[0]
        return Relation(**base, link="INLINE", inline_model=m.name, inline_column=f.column)
    return Relation(**base, link="TABLE")
