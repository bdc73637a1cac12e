"""The real Prisma 1 CLI (`prisma1@1.34.12`) deploying to a real runtime process."""

from __future__ import annotations

import subprocess
from pathlib import Path

import jwt
import pytest

from tests.runtime.conftest import MANAGEMENT_SECRET, Database, Runtime
from tests.support.prisma_cli import prisma_cli, run_prisma

pytestmark = [pytest.mark.multiprocess, pytest.mark.node]

OFFLINE = Path(__file__).with_name("offline.js")
SERVICE_SECRET = "cli-service-secret-0123456789-0123456789"
USER = "type User {\n  id: ID! @id\n  name: String!\n}\n"
USER_EMAIL = "type User {\n  id: ID! @id\n  name: String!\n  email: String\n}\n"
POST = "type Post {\n  id: ID! @id\n  title: String!\n}\n"
USER_POSTS = (
    "type User {\n  id: ID! @id\n  name: String!\n  email: String\n  posts: [Post]\n}\n"
    "type Post {\n  id: ID! @id\n  title: String!\n  author: User\n}\n"
)


@pytest.fixture(scope="module")
def cli() -> Path:
    return prisma_cli()


class Project:
    """A prisma.yml project directory with its own HOME, run like a user would."""

    def __init__(self, root: Path, runtime: Runtime, service: str) -> None:
        self.home = root / "home"
        self.dir = root / "project"
        self.home.mkdir()
        self.dir.mkdir()
        self.endpoint = f"{runtime.url.replace('127.0.0.1', 'localhost')}/{service}/dev"
        (self.dir / "prisma.yml").write_text(
            f"endpoint: {self.endpoint}\ndatamodel: datamodel.prisma\nsecret: {SERVICE_SECRET}\n"
        )

    def datamodel(self, text: str) -> None:
        (self.dir / "datamodel.prisma").write_text(text)

    def run(
        self, *args: str, management_secret: str = MANAGEMENT_SECRET
    ) -> subprocess.CompletedProcess[str]:
        return run_prisma(
            list(args),
            home=self.home,
            cwd=self.dir,
            env={
                "PRISMA_MANAGEMENT_API_SECRET": management_secret,
                # The CLI asks the cloud who is logged in on every deploy: keep it on loopback,
                # and let no other host name resolve (Sentry reports on errors).
                "CLOUD_API_ENDPOINT": "http://127.0.0.1:9/",
                "NODE_OPTIONS": f"--require {OFFLINE}",
            },
        )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_deploy_change_force_info_token_and_delete_with_the_real_cli(
    cli: Path, runtime: Runtime, database: Database, tmp_path: Path, service_name: str
) -> None:
    project = Project(tmp_path, runtime, service_name)
    schema = f"{service_name}$dev"

    project.datamodel(USER)
    first = project.run("deploy")
    assert first.returncode == 0, output(first)
    assert "Created type `User`" in output(first)
    assert database.tables(schema) == {"User"}

    project.datamodel(USER_EMAIL)
    added_field = project.run("deploy")
    assert added_field.returncode == 0, output(added_field)
    assert "email" in database.columns(schema, "User")

    project.datamodel(USER_EMAIL + POST)
    added_type = project.run("deploy")
    assert added_type.returncode == 0, output(added_type)
    assert database.tables(schema) == {"User", "Post"}

    project.datamodel(USER_POSTS)
    added_relation = project.run("deploy")
    assert added_relation.returncode == 0, output(added_relation)
    assert database.columns(schema, "Post")["author"] == ("character varying", True)

    unchanged = project.run("deploy")
    assert unchanged.returncode == 0, output(unchanged)
    assert "Service is already up to date." in output(unchanged)

    with database.connect() as conn:
        conn.execute(f"""INSERT INTO "{schema}"."Post" (id, title) VALUES ('p1', 'kept')""")  # noqa: S608
    project.datamodel(USER_EMAIL)
    refused = project.run("deploy")
    assert refused.returncode != 0
    assert "data loss" in output(refused)
    assert database.tables(schema) == {"User", "Post"}

    forced = project.run("deploy", "--force")
    assert forced.returncode == 0, output(forced)
    assert database.tables(schema) == {"User"}
    assert "author" not in database.columns(schema, "User")

    info = project.run("info")
    assert info.returncode == 0, output(info)
    assert project.endpoint in output(info)

    token = project.run("token")
    assert token.returncode == 0, output(token)
    claims = jwt.decode(token.stdout.strip(), SERVICE_SECRET, algorithms=["HS256"])
    assert claims["data"]["service"] == f"{service_name}@dev"

    deleted = project.run("delete", "--force")
    assert deleted.returncode == 0, output(deleted)
    assert schema not in database.schemas()


def test_a_bad_datamodel_is_reported_by_the_cli_and_changes_nothing(
    cli: Path, runtime: Runtime, database: Database, tmp_path: Path, service_name: str
) -> None:
    project = Project(tmp_path, runtime, service_name)
    project.datamodel("type User {\n  id: ID! @id\n  owner: Owner\n}\n")
    result = project.run("deploy")
    assert result.returncode != 0
    assert "there's no type or enum declaration with that name" in output(result)
    assert database.tables(f"{service_name}$dev") == set()


def test_a_wrong_management_secret_gets_the_clis_own_explanation(
    cli: Path, runtime: Runtime, database: Database, tmp_path: Path, service_name: str
) -> None:
    """The runtime refuses a bad token before reading the body, in the answer the CLI knows."""
    project = Project(tmp_path, runtime, service_name)
    project.datamodel(USER)
    result = project.run("deploy", management_secret="not-the-runtime-secret-0123456789")
    assert result.returncode != 0
    assert "PRISMA_MANAGEMENT_API_SECRET environment variable is set incorrectly" in output(result)
    assert f"{service_name}$dev" not in database.schemas()
