"""`@sequence` on Int ids (`CreateMutationSequenceSpec`, `SequenceDirectiveSpec`): the id
column draws from its own sequence, starting at `initialValue`."""

from __future__ import annotations

import pytest

from runtime.datamodel import SchemaError, parse_datamodel
from tests.runtime.conftest import Database
from tests.runtime.opencrud.prisma_shapes import deployed

MISPLACED = (
    "The directive `@sequence` must only be specified for fields that are marked as id, are of "
    "type `Int` and use the sequence strategy. E.g. `id: Int! @id(strategy: SEQUENCE)`."
)


def test_the_directive_is_read_with_its_arguments() -> None:
    result = parse_datamodel(
        "type Model {\n  id: Int! @id(strategy: SEQUENCE) "
        '@sequence(name: "MY_SEQUENCE" initialValue:11 allocationSize:123)\n}'
    )
    assert result.ok, result.errors
    assert result.schema is not None
    f = result.schema.models[0].id_field
    assert (f.id_strategy, f.sequence_name, f.sequence_initial, f.sequence_allocation) == (
        "SEQUENCE", "MY_SEQUENCE", 11, 123
    )  # fmt: skip


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("id: ID! @id(strategy: SEQUENCE)", "id"),
        ("id: ID! @id(strategy: NONE)", "id"),
        ("id: Int! @id", "id"),
    ],
)
def test_the_directive_only_fits_int_ids_with_the_sequence_strategy(field: str, name: str) -> None:
    result = parse_datamodel(
        f'type Model {{\n  {field} @sequence(name: "S" initialValue:1 allocationSize:100)\n}}'
    )
    assert SchemaError("Model", name, MISPLACED) in result.errors


def test_the_directive_is_refused_off_the_id() -> None:
    result = parse_datamodel(
        "type Model {\n  id: ID! @id\n  "
        'field: String! @sequence(name: "S" initialValue:1 allocationSize:100)\n}'
    )
    assert result.errors == [SchemaError("Model", "field", MISPLACED)]


def test_a_create_for_a_type_with_only_a_sequence_id(database: Database) -> None:
    datamodel = """
type AtomicRefNumber {
  id: Int!
    @id(strategy: SEQUENCE)
    @sequence(name: "AtomicRefNumberSequence", initialValue: 10000, allocationSize: 1)
}

type Plain {
  id: Int! @id
  name: String
}
"""
    with deployed(database, datamodel) as s:
        assert s.data("mutation { createAtomicRefNumber { id } }") == {
            "createAtomicRefNumber": {"id": 10000}
        }
        assert s.data("mutation { createAtomicRefNumber { id } }") == {
            "createAtomicRefNumber": {"id": 10001}
        }
        assert s.data("mutation { createPlain(data: {}) { id } }") == {"createPlain": {"id": 1}}
        rows = s.sql(
            "SELECT sequencename, start_value FROM pg_sequences WHERE schemaname = %s "
            "ORDER BY sequencename",
            [s.schema_name],
        )
        assert ("AtomicRefNumberSequence", 10000) in rows
