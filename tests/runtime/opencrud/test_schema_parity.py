"""The generated schema equals what Prisma's own generator prints (reference 5.9, 5.10).

The oracle is `tests/support/gen_schema.js` run by node against the real `prisma1@1.34.12`
package. The comparison is type by type and field by field (arguments and types included),
ignoring order; the one allowed difference is the server's `implements Node` on model types.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from graphql import build_schema

from runtime.datamodel import parse_datamodel
from runtime.opencrud.model import api_schema
from runtime.opencrud.naming import plural
from runtime.opencrud.sdl import opencrud_sdl
from tests.runtime.opencrud.schema_diff import schema_differences
from tests.support.prisma_cli import CACHE, prisma_cli

pytestmark = [pytest.mark.node]

DATAMODELS = Path(__file__).parent / "datamodels"
# Our copy of the oracle runner: the checkout must not depend on folders beside it.
GEN_SCHEMA = Path(__file__).resolve().parents[2] / "support" / "gen_schema.js"
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def node_modules() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed")
    prisma_cli()
    return CACHE / "node_modules"


def prisma_schema(node_modules: Path, datamodel: Path) -> str:
    return subprocess.run(
        ["node", str(GEN_SCHEMA), str(datamodel), "postgres"],
        env={**os.environ, "NODE_PATH": str(node_modules)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def our_schema(datamodel: Path, *, node_interface: bool) -> str:
    result = parse_datamodel(datamodel.read_text())
    assert result.ok, result.errors
    assert result.schema is not None
    return opencrud_sdl(api_schema(result.schema), node_interface=node_interface)


@pytest.mark.parametrize("datamodel", sorted(DATAMODELS.glob("*.prisma")), ids=lambda p: p.stem)
def test_schema_matches_prismas_generator(node_modules: Path, datamodel: Path) -> None:
    theirs = prisma_schema(node_modules, datamodel)
    assert schema_differences(our_schema(datamodel, node_interface=False), theirs) == []


def test_there_are_at_least_ten_varied_datamodels() -> None:
    assert len(list(DATAMODELS.glob("*.prisma"))) >= 10


@pytest.mark.parametrize("datamodel", sorted(DATAMODELS.glob("*.prisma")), ids=lambda p: p.stem)
def test_served_schema_only_adds_implements_node(node_modules: Path, datamodel: Path) -> None:
    served = build_schema(our_schema(datamodel, node_interface=True))
    plain = our_schema(datamodel, node_interface=False)
    differences = schema_differences(our_schema(datamodel, node_interface=True), plain)
    uses_json = "Json" in build_schema(plain).type_map
    assert differences == ([] if uses_json else ["extra type Json"])
    assert "Json" in served.type_map
    result = parse_datamodel(datamodel.read_text())
    assert result.schema is not None
    for model in result.schema.models:
        interfaces = [i.name for i in served.type_map[model.name].interfaces]  # type: ignore[attr-defined]
        has_node_id = any(f.name == "id" and f.type_name == "ID" for f in model.fields)
        assert interfaces == (["Node"] if has_node_id else [])


def test_sample_schema_equals_the_server_variant_in_the_reference() -> None:
    ours = our_schema(HERE / "datamodels" / "sample.prisma", node_interface=True)
    # What the Prisma server itself serves for it (shared/reference, kept here).
    theirs = (HERE / "expected" / "sample.server-variant.graphql").read_text()
    assert schema_differences(ours, theirs) == []
    served = build_schema(ours)
    assert [i.name for i in served.type_map["User"].interfaces] == ["Node"]  # type: ignore[attr-defined]


def test_the_served_schema_declares_json_even_when_no_field_uses_it() -> None:
    """A schema the Scala server served (prisma-generate-schema's blackbox case `todo`, kept in
    expected/): no field is Json, yet it declares `scalar Json`; ours declares the same API."""
    ours = our_schema(HERE / "expected" / "todo.prisma", node_interface=True)
    theirs = (HERE / "expected" / "todo.server.graphql").read_text()
    assert "Json" not in (HERE / "expected" / "todo.prisma").read_text()
    assert "\nscalar Json\n" in "\n" + ours
    assert schema_differences(ours, theirs) == []


WORDS = [
    "Todo", "Person", "Category", "Child", "Mouse", "Status", "News", "Data", "Series", "User",
    "Box", "Bus", "Human", "Woman", "Leaf", "Knife", "Quiz", "Photo", "Hero", "Index", "Datum",
    "Sheep", "Criterion", "Matrix", "Vertex", "Alumnus", "Octopus", "Analysis", "Day", "Party",
    "Wolf", "Church", "Glass", "Tomato", "Schema", "Goose", "Foot", "Tooth", "Money", "Genus",
    "Fish", "Address", "Class", "Axis", "Mongoose", "Chassis", "Species", "Piano", "Lens",
]  # fmt: skip


def test_plurals_follow_prismas_inflector(node_modules: Path) -> None:
    script = (
        "const {plural} = require('prisma-datamodel');"
        f"process.stdout.write(JSON.stringify({json.dumps(WORDS)}.map(plural)))"
    )
    theirs = subprocess.run(
        ["node", "-e", script],
        env={**os.environ, "NODE_PATH": str(node_modules)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert [plural(w) for w in WORDS] == json.loads(theirs)
