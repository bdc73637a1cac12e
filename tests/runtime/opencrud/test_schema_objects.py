"""The schema a service serves is built from the generator's types directly, fields on demand,
and is the same schema the printed SDL gives (`runtime.opencrud.sdl.objects`).

The reference is what the runtime served before: the generator's SDL parsed by graphql-core's
`build_schema`, with Prisma's literal rules on its scalars. Both are compared printed, type order
and introspection answers included, for the test datamodels (the reference sample among them)
and for the bench's generated ones (5 to 30 types, enums, unique fields, link tables, self
relations). graphql-core's full schema validation passes on ours: the runtime skips it
(`assume_valid`) because these tests run it.
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    StringValueNode,
    build_schema,
    get_introspection_query,
    graphql_sync,
    parse,
    print_schema,
    validate,
    validate_schema,
)

from bench.datamodels import datamodel, types_for
from runtime.datamodel import parse_datamodel
from runtime.opencrud.model import api_schema
from runtime.opencrud.sdl import opencrud_sdl, opencrud_types
from runtime.opencrud.service import PRISMA_LITERALS, service_api
from tests.runtime.opencrud.schema_diff import schema_differences
from tests.runtime.opencrud.test_schema_parity import node_modules, prisma_schema  # noqa: F401

DATAMODELS = Path(__file__).parent / "datamodels"
CASES = {p.stem: p.read_text() for p in sorted(DATAMODELS.glob("*.prisma"))} | {
    f"generated-{k}-{n}": datamodel(k, n) for k, n in ((0, 5), (41, 17), (99, 30))
}
INTROSPECTION = get_introspection_query(
    descriptions=True,
    specified_by_url=True,
    directive_is_repeatable=True,
    schema_description=True,
    input_value_deprecation=True,
)


def schema_json(text: str) -> str:
    result = parse_datamodel(text)
    assert result.ok, result.errors
    assert result.schema is not None
    return result.schema.to_json()


def sdl_built(text: str) -> GraphQLSchema:
    """The schema as the runtime built it before: printed, parsed back, scalars patched."""
    result = parse_datamodel(text)
    assert result.schema is not None
    schema = build_schema(opencrud_sdl(api_schema(result.schema)))
    for name, parse_literal in PRISMA_LITERALS.items():
        scalar = schema.type_map.get(name)
        if isinstance(scalar, GraphQLScalarType):
            scalar.parse_literal = parse_literal  # type: ignore[method-assign]
    return schema


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_served_schema_prints_and_introspects_as_the_sdl_built_one(name: str) -> None:
    text = CASES[name]
    reference = sdl_built(text)
    served = service_api(schema_json(text)).graphql_schema
    assert print_schema(served) == print_schema(reference)
    assert list(served.type_map) == list(reference.type_map)
    theirs = graphql_sync(reference, INTROSPECTION)
    ours = graphql_sync(served, INTROSPECTION)
    assert theirs.errors is None and ours.errors is None
    assert ours.data == theirs.data


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_served_schema_passes_graphql_cores_schema_validation(name: str) -> None:
    served = service_api(schema_json(CASES[name])).graphql_schema
    assert served.assume_valid  # the runtime does not validate it per process...
    checked = GraphQLSchema(**{**served.to_kwargs(), "assume_valid": False})
    assert validate_schema(checked) == []  # ...because this does


def test_the_reference_sample_is_among_the_compared_datamodels() -> None:
    sample = Path(__file__).parent / "datamodels" / "sample.prisma"
    assert CASES["sample"] == sample.read_text()
    assert "User" in service_api(schema_json(CASES["sample"])).graphql_schema.type_map


def test_fields_are_built_when_first_read() -> None:
    """A request to a new 30-type datamodel builds the few types it touches, not ~950."""
    api = service_api(schema_json(datamodel(7, 30)))
    schema = api.graphql_schema

    def built() -> set[str]:
        return {
            name
            for name, t in schema.type_map.items()
            if isinstance(t, GraphQLObjectType | GraphQLInputObjectType)
            and "fields" in vars(t)
            and not name.startswith("__")  # graphql-core's own introspection types
        }

    assert built() == set()
    document = parse('{ items(first: 2, where: {name_starts_with: "a"}) { id name } }')
    assert validate(schema, document) == []
    touched = built()
    assert {"Query", "Item", "ItemWhereInput"} <= touched
    assert len(touched) < 20 < len(schema.type_map)
    print_schema(schema)  # introspection and printing read every type
    assert len(built()) > 500


def test_a_first_request_generates_the_types_it_reads_not_the_whole_schema() -> None:
    """The generator itself is lazy too: a new 30-type datamodel's first request builds the
    fields of a few of its ~950 types; reading the schema whole builds them all."""
    api = service_api(schema_json(datamodel(7, 30)))
    generator = api.graphql_schema.type_map._types.source  # type: ignore[attr-defined]

    def built() -> int:  # object and input types (an enum's values are built with the enum)
        return sum(t.built for t in generator.types.values() if t.kind in ("type", "input"))

    assert built() == 0  # the root types too are registered, not built
    document = parse("query($n: String) { items(where: {name: $n}) { id name } }")
    assert validate(api.graphql_schema, document) == []
    assert built() < 20 < len(generator.types)
    assert generator.types["Query"].built and not generator.types["Mutation"].built
    complete = len(print_schema(api.graphql_schema))
    assert all(t.built for t in generator.types.values()) and len(generator.types) > 900
    assert complete > 100_000


def test_threads_reading_a_new_schema_at_once_share_one_type_per_name() -> None:
    """Worker threads and the event loop share an API: types made at once by several threads
    are still one object per name (a variable's type must be the argument's type itself)."""
    for k in range(4):
        schema = service_api(schema_json(datamodel(50 + k, 20))).graphql_schema
        documents = [
            parse("mutation($d: ItemCreateInput!) { createItem(data: $d) { id } }"),
            parse("query($w: ItemWhereInput) { items(where: $w) { id } }"),
            parse("mutation($d: ItemUpdateInput!, $w: ItemWhereUniqueInput!) "
                  "{ updateItem(data: $d, where: $w) { id } }"),
        ] * 4  # fmt: skip
        with ThreadPoolExecutor(len(documents)) as pool:
            errors = list(pool.map(validate, [schema] * len(documents), documents))
        assert errors == [[]] * len(documents)
        mutation = schema.mutation_type
        assert mutation is not None
        data = mutation.fields["createItem"].args["data"].type
        assert getattr(data, "of_type", None) is schema.type_map["ItemCreateInput"]


@pytest.mark.parametrize("name", ["sample", "all_scalars", "id_kinds"])
def test_standard_scalars_are_known_exactly_as_on_the_sdl_built_schema(name: str) -> None:
    """A standard scalar is a known type only if the schema names it: asked before any field
    naming it was read, the lazy schema answers as the complete one."""
    text = CASES[name]
    reference = sdl_built(text)
    for scalar in ("Float", "Int", "ID", "Boolean", "String"):
        served = service_api(schema_json(text)).graphql_schema  # nothing built yet
        document = parse(f"query($x: {scalar}) {{ __typename }}")
        assert [e.message for e in validate(served, document)] == [
            e.message for e in validate(reference, document)
        ], scalar
        assert (scalar in served.type_map) == (scalar in reference.type_map), scalar


def test_prisma_literal_rules_hold_on_the_served_scalars() -> None:
    scalars = service_api(schema_json(CASES["all_scalars"])).graphql_schema.type_map
    date = scalars["DateTime"]
    assert isinstance(date, GraphQLScalarType)
    assert date.parse_literal(StringValueNode(value="2020-01-02T03:04:05Z")) == (
        "2020-01-02T03:04:05Z"
    )
    with pytest.raises(Exception, match="Date value expected"):
        date.parse_literal(StringValueNode(value="yesterday"))


def test_invalid_documents_get_the_same_errors_as_on_the_sdl_built_schema() -> None:
    text = datamodel(3, 12)
    served = service_api(schema_json(text)).graphql_schema
    document = parse(
        "query($w: ItemWhereInput, $x: Nope) { items(where: $w) { nope } itemz { id } "
        'item(where: {id: 1, name: "x"}) { id } node(id: "1") { ... on T3x1 { id } } }'
    )
    errors = [e.message for e in validate(served, document)]
    assert len(errors) >= 4
    assert errors == [e.message for e in validate(sdl_built(text), document)]


def test_generated_datamodels_span_five_to_thirty_types_and_differ() -> None:
    sizes = [types_for(k, 100) for k in range(100)]
    assert min(sizes) == 5 and max(sizes) == 30
    texts = {datamodel(k, types_for(k, 100)) for k in range(100)}
    assert len(texts) == 100
    assert datamodel(5, 9) == datamodel(5, 9)  # deterministic


@pytest.mark.node
@pytest.mark.parametrize("k, n", [(0, 5), (41, 17), (99, 30)])
def test_generated_datamodels_match_prismas_generator(
    node_modules: Path,  # noqa: F811
    tmp_path: Path,
    k: int,
    n: int,
) -> None:
    """The bench's datamodels exercise the generator as Prisma's own does."""
    path = tmp_path / "generated.prisma"
    path.write_text(datamodel(k, n))
    result = parse_datamodel(path.read_text())
    assert result.schema is not None
    ours = opencrud_sdl(api_schema(result.schema), node_interface=False)
    assert schema_differences(ours, prisma_schema(node_modules, path)) == []
    assert len(opencrud_types(api_schema(result.schema))) > 10 * n


NAMES = ["User", "_x", "a1_B", "x" * 300, "", "1User", "Us er", "Usér", "ユーザー", "a-b", "a\n",
         "\u0661", "true", "false", "null", "True", None, 12, b"User"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_names_are_checked_exactly_as_graphql_core_checks_them(name: object) -> None:
    """The fast name check the runtime puts in graphql-core's place accepts and refuses what
    graphql-core's own does, with the same error."""
    import graphql.type.definition

    from runtime.opencrud.sdl import objects

    library = importlib.import_module("graphql.type.assert_name")
    assert graphql.type.definition.assert_name is objects._assert_name
    for ours, theirs in [
        (objects._assert_name, library.assert_name),
        (objects._assert_enum_value_name, library.assert_enum_value_name),
    ]:
        try:
            expected: object = theirs(name)  # type: ignore[arg-type]
        except Exception as exc:
            expected = (type(exc), str(exc))
        try:
            got: object = ours(name)  # type: ignore[arg-type]
        except Exception as exc:
            got = (type(exc), str(exc))
        assert got == expected
