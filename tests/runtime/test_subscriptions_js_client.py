"""The JavaScript client that `prisma1 generate` makes subscribes through the runtime: its
`$subscribe` speaks `graphql-ws` (subscriptions-transport-ws) to the service's endpoint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.runtime.conftest import Runtime
from tests.runtime.test_js_client import DATAMODEL
from tests.runtime.test_prisma_cli import Project, output
from tests.support.prisma_cli import CACHE

pytestmark = [pytest.mark.multiprocess, pytest.mark.node]

# The subscription starts in the background of `$subscribe`, so the script writes probes until
# the first event comes; every write after that is seen.
SCRIPT = """
const { prisma } = require('./generated/prisma-client');

(async () => {
  const events = await prisma.$subscribe.user({ mutation_in: ['CREATED', 'UPDATED', 'DELETED'] });
  const first = events.next();
  let probes = 0;
  let created;
  while (created === undefined) {
    await prisma.createUser({ email: `probe${probes++}@example.com`, name: 'probe' });
    created = await Promise.race([first, new Promise((done) => setTimeout(done, 200))]);
  }
  const id = created.value.node.id;
  await prisma.updateUser({ where: { id }, data: { name: 'Ada' } });
  await prisma.deleteUser({ id });
  const seen = [created.value];
  while (seen.filter((e) => e.mutation !== 'CREATED').length < 2) {
    seen.push((await events.next()).value);
  }
  console.log(JSON.stringify(seen.filter((e) => e.mutation !== 'CREATED').concat([created.value])));
  process.exit(0);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
"""


def test_the_generated_javascript_client_subscribes(
    runtime: Runtime, tmp_path: Path, service_name: str
) -> None:
    project = Project(tmp_path, runtime, service_name)
    project.datamodel(DATAMODEL)
    prisma_yml = project.dir / "prisma.yml"
    prisma_yml.write_text(
        prisma_yml.read_text()
        + "generate:\n  - generator: javascript-client\n    output: ./generated/prisma-client/\n"
    )
    deployed = project.run("deploy")
    assert deployed.returncode == 0, output(deployed)
    generated = project.run("generate")
    assert generated.returncode == 0, output(generated)
    (project.dir / "subscribe.js").write_text(SCRIPT)

    run = subprocess.run(
        ["node", "subscribe.js"],
        cwd=project.dir,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "NODE_PATH": str(CACHE / "node_modules")},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    updated, deleted, created = json.loads(run.stdout)
    assert created["mutation"] == "CREATED" and created["node"]["name"] == "probe"
    assert updated["mutation"] == "UPDATED"
    assert updated["node"] == {**created["node"], "name": "Ada"}
    assert updated["updatedFields"] == ["name"]
    assert updated["previousValues"]["name"] == "probe"
    assert deleted["mutation"] == "DELETED" and deleted["node"] is None
    assert deleted["previousValues"]["name"] == "Ada"
