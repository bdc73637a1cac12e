"""`prisma1 export`, `reset` and `import` against a real runtime process."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.test_prisma_cli import SERVICE_SECRET, Project, output

pytestmark = [pytest.mark.multiprocess, pytest.mark.node]

DATAMODEL = """
type Author { id: ID! @id  name: String!  books: [Book] }
type Book { id: ID! @id  title: String!  tags: [String] @scalarList(strategy: RELATION)
            author: Author @relation(link: INLINE) }
"""
CREATE = """mutation { createAuthor(data: {name: "Le Guin", books: {create: [
  {title: "The Dispossessed", tags: {set: ["anarchy", "physics"]}}]}}) { id } }"""
READ = "{ authors { name books { title tags } } }"


def test_export_reset_and_import_round_trip(runtime: Runtime, tmp_path: Path, service_name: str):
    project = Project(tmp_path, runtime, service_name)
    project.datamodel(DATAMODEL)
    assert project.run("deploy").returncode == 0
    token = jwt.encode({"data": {"service": f"{service_name}@dev"}}, SERVICE_SECRET, "HS256")
    url = f"/{service_name}/dev"
    runtime.post(url, {"query": CREATE}, token)
    before = runtime.post(url, {"query": READ}, token).body

    exported = project.run("export", "-p", "data.zip")
    assert exported.returncode == 0, output(exported)
    reset = project.run("reset", "--force")
    assert reset.returncode == 0, output(reset)
    assert runtime.post(url, {"query": READ}, token).body == {"data": {"authors": []}}
    imported = project.run("import", "--data", "data.zip")
    assert imported.returncode == 0, output(imported)

    assert runtime.post(url, {"query": READ}, token).body == before
    assert before["data"]["authors"][0]["books"][0]["tags"] == ["anarchy", "physics"]
