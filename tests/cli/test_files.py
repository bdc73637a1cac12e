"""The files `refract` reads and writes, in process: prisma.yml in both forms, the choice
written back with every other byte kept, the registry shared with the Prisma 1 CLI, and the
tokens it signs (protocol reference 4.1-4.3, 7.2, 7.3)."""

from __future__ import annotations

import os
import stat

import jwt
import pytest
import yaml
from refract_cli.errors import CliError
from refract_cli.project import Project, parse_endpoint
from refract_cli.registry import Registry
from refract_cli.tokens import credential_from_secret, generate_key_pair, service_token


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://localhost:4466", ("http://localhost:4466", None, "default", "default")),
        ("http://localhost:4466/svc/dev", ("http://localhost:4466", None, "svc", "dev")),
        ("http://prisma:4466/svc", ("http://prisma:4466", None, "svc", "default")),
        ("http://127.0.0.1:4466/ws/svc/dev", ("http://127.0.0.1:4466", "ws", "svc", "dev")),
        ("https://eu1.prisma.sh/ws/svc/dev", ("https://eu1.prisma.sh", "ws", "svc", "dev")),
    ],
)
def test_endpoints_are_read_as_the_prisma_cli_reads_them(endpoint, expected):
    parsed = parse_endpoint(endpoint)

    assert (parsed.origin, parsed.workspace, parsed.service, parsed.stage) == expected


def test_a_bad_endpoint_says_how_to_write_it():
    with pytest.raises(CliError) as refused:
        parse_endpoint("localhost:4466/svc/dev")

    assert "http://host:port/<service>/<stage>" in refused.value.hint


def project(tmp_path, text: str) -> Project:
    (tmp_path / "prisma.yml").write_text(text)
    return Project(tmp_path / "prisma.yml")


def test_both_forms_give_the_service_and_stage(tmp_path):
    assert project(tmp_path, "service: blog\ncluster: vm\n").service_stage() == ("blog", "dev")
    brief = project(tmp_path, "service: blog\nstage: prod\ncluster: acme/eu\n")
    assert (brief.service_stage(), brief.cluster) == (("blog", "prod"), "acme/eu")
    later = project(tmp_path, "endpoint: http://localhost:4466/shop/test\n")
    assert later.service_stage() == ("shop", "test") and later.cluster == ""


def test_env_references_and_a_list_of_datamodel_files(tmp_path, monkeypatch):
    monkeypatch.setenv("THE_SECRET", "s1")
    (tmp_path / "a.prisma").write_text("type A {\n  id: ID! @id\n}")
    (tmp_path / "b.prisma").write_text("type B {\n  id: ID! @id\n}")
    found = project(
        tmp_path,
        "service: x\nsecret: ${env:THE_SECRET}, s2\ndatamodel:\n  - a.prisma\n  - b.prisma\n",
    )

    assert found.secrets == ["s1", "s2"]
    assert found.datamodel() == "type A {\n  id: ID! @id\n}\ntype B {\n  id: ID! @id\n}"


def test_a_missing_service_or_datamodel_names_the_property(tmp_path):
    empty = project(tmp_path, "# nothing yet\n")
    with pytest.raises(CliError) as no_service:
        empty.service_stage()
    with pytest.raises(CliError) as no_datamodel:
        empty.datamodel()

    assert "`service: <name>`" in no_service.value.hint
    assert "datamodel" in no_datamodel.value.message


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            "# top\nservice: x   # name\nstage: dev\n\n# types\ndatamodel:\n  - d.prisma\n",
            "# top\nservice: x   # name\nstage: dev\ncluster: acme/eu\n\n# types\ndatamodel:\n"
            "  - d.prisma\n",
        ),
        (
            "datamodel: d.prisma  # the types\nservice: 'x'\n# the end\n",
            "datamodel: d.prisma  # the types\nservice: 'x'\ncluster: acme/eu\n# the end\n",
        ),
        ("datamodel: d.prisma", "datamodel: d.prisma\ncluster: acme/eu\n"),
        ("service: x\ncluster:  # to choose\n", "service: x\ncluster: acme/eu # to choose\n"),
    ],
)
def test_the_chosen_cluster_is_written_and_nothing_else_changes(tmp_path, before, after):
    found = project(tmp_path, before)

    found.write_cluster("acme/eu")

    assert (tmp_path / "prisma.yml").read_text() == after
    assert Project(tmp_path / "prisma.yml").cluster == "acme/eu"


def test_the_registry_keeps_the_prisma_clis_keys_and_comments(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        "# written by prisma1\ncloudSessionKey: >-\n  aaa.bbb.ccc\nclusters: {}\nother: 1\n"
    )
    registry = Registry(path)
    assert registry.session_key == "aaa.bbb.ccc"

    registry.add_cluster("vm", "http://localhost:4466", "/keys/vm.pem")
    registry.console = "http://console.test"
    registry.save()

    assert path.read_text().startswith("# written by prisma1\n")
    assert yaml.safe_load(path.read_text()) == {
        "cloudSessionKey": "aaa.bbb.ccc",
        "clusters": {"vm": {"host": "http://localhost:4466", "clusterSecret": "/keys/vm.pem"}},
        "other": 1,
        "refractConsole": "http://console.test",
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    registry.session_key = ""
    registry.save()
    assert "cloudSessionKey" not in yaml.safe_load(path.read_text())


def test_a_cluster_secret_is_a_key_a_path_to_one_or_a_management_secret(tmp_path):
    keys = generate_key_pair()
    key_file = tmp_path / "vm.pem"
    key_file.write_text(keys.private_pem)

    inline = credential_from_secret(keys.private_pem, "entry")
    from_file = credential_from_secret(str(key_file), "entry")
    shared = credential_from_secret("a-management-secret-of-32-bytes-or-more", "entry")

    for credential in (inline, from_file):
        claims = jwt.decode(credential.sign("blog/dev"), keys.public_pem, algorithms=["RS256"])
        assert claims["grants"] == [{"target": "blog/dev", "action": "*"}]
        assert claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(shared.sign("*/*"))["alg"] == "HS256"
    assert credential_from_secret("", "entry") is None
    with pytest.raises(CliError) as missing:
        credential_from_secret(str(tmp_path / "gone.pem"), "entry").sign("*/*")
    assert "gone.pem" in missing.value.message


def test_a_service_token_is_what_prisma1_token_signs():
    first = "the-first-secret-of-the-service-32b"
    token = service_token(f"{first}, the-second-one", "svc2", "prod")

    claims = jwt.decode(token, first, algorithms=["HS256"])
    assert claims["data"] == {"service": "svc2@prod", "roles": ["admin"]}
    assert claims["exp"] - claims["iat"] == 7 * 24 * 3600


def test_refract_imports_nothing_of_the_control_plane():
    """A package of its own (`pipx install ./cli`): loading every command brings in neither
    Django nor the project's packages."""
    import subprocess
    import sys

    script = (
        "import sys, refract_cli.main\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'django', 'rest_framework', 'cloud', 'accounts', 'servers', 'compat', 'runtime'})\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd="/", check=True
    )

    assert done.stdout.strip() == ""


def test_the_projects_lock_pins_every_dependency_of_refract():
    """`make` installs ./cli with --no-deps: its dependencies come from requirements-dev.lock,
    so the root pyproject (and with it `make lock`) must name each of them."""
    import tomllib
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from tests.cloud.test_lock import declared, locked

    root = Path(__file__).resolve().parents[2]
    cli = tomllib.loads((root / "cli" / "pyproject.toml").read_text())["project"]
    needed = {canonicalize_name(Requirement(r).name) for r in cli["dependencies"]}

    assert needed - declared("dev") == set()
    assert needed | {"pexpect"} <= locked("requirements-dev.lock")
