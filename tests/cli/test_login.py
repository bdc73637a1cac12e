"""Logging in and out against the real console (`live_server`): the device flow approved as
the console's /device page approves it, `--key` for CI, `account`, and `logout`, which
revokes the key on the console, or says it could not."""

from __future__ import annotations

import re
import subprocess

import pytest

from accounts import cli_login, session_keys
from accounts.models import SessionKey
from tests.cli.conftest import refract_command
from tests.compat.test_cloud_api import key_for
from tests.support.prisma_cli import run_prisma

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def olivia(make_user, live_server):
    return make_user("olivia", console=live_server.url)


def test_device_login_waits_for_the_approval_in_the_console(olivia, owner, settings):
    settings.CLI_LOGIN_POLL_INTERVAL = 1
    process = subprocess.Popen(
        [*refract_command(), "login", "--no-browser"],
        cwd=olivia.project,
        env=olivia.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        printed = ""
        while "Waiting" not in printed:
            line = process.stderr.readline()
            assert line, f"refract ended before asking: {printed}"
            printed += line
        assert f"{olivia.console}/device?code=" in printed
        code = re.search(r"shows the code (\S+)\.", printed).group(1)

        # What the /device page does when Olivia types the code and clicks Authorize.
        cli_login.approve(cli_login.find_by_user_code(owner.user, code), owner.user)

        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stdout + stderr
    assert f"Logged in to {olivia.console} as owner@example.com." in stdout
    registry = olivia.registry()
    assert registry["refractConsole"] == olivia.console
    key = SessionKey.objects.get(user=owner.user, origin=SessionKey.Origin.CLI_LOGIN)
    assert key.name.startswith("refract on ")
    assert olivia.run("account", "--json").json()["email"] == "owner@example.com"


def test_login_with_a_key_then_logout_revokes_it_on_the_console(olivia, owner):
    key = key_for(owner)

    logged_in = olivia.run("login", "--key", key)

    assert logged_in.returncode == 0, logged_in.output
    assert olivia.registry()["cloudSessionKey"] == key
    account = olivia.run("account")
    assert "Email: owner@example.com" in account.stdout
    assert "workspace acme (owner)" in account.stdout

    logged_out = olivia.run("logout")

    assert logged_out.returncode == 0, logged_out.output
    assert "revoked on the console" in logged_out.stdout
    assert "cloudSessionKey" not in olivia.registry()
    assert SessionKey.objects.get(user=owner.user).revoked_at is not None
    after = olivia.run("account")
    assert after.returncode == 1 and "not logged in" in after.stderr


def test_logout_without_the_console_removes_the_key_and_says_it_is_still_valid(olivia, owner):
    assert olivia.run("login", "--key", key_for(owner)).returncode == 0

    logged_out = olivia.run("--console", "http://127.0.0.1:9", "logout")

    assert logged_out.returncode == 0, logged_out.output
    assert "still valid until you revoke it" in logged_out.stdout
    assert "cloudSessionKey" not in olivia.registry()
    assert SessionKey.objects.get(user=owner.user).revoked_at is None


def test_a_revoked_key_says_to_log_in_again(olivia, owner):
    assert olivia.run("login", "--key", key_for(owner)).returncode == 0
    session_keys.revoke(SessionKey.objects.get(user=owner.user))

    refused = olivia.run("servers")

    assert refused.returncode == 0  # the registry is still listed ...
    assert "refused your session key" in refused.stderr  # ... and the workspaces' are not
    account = olivia.run("account", "--json")
    assert account.returncode == 1
    assert account.json()["error"] == "session_key_refused"
    assert "refract login" in account.json()["hint"]


def test_a_wrong_key_is_not_saved(olivia, owner):
    refused = olivia.run("login", "--key", "not-a-key")

    assert refused.returncode == 1
    assert "refused your session key" in refused.stderr
    assert not olivia.registry_file.exists()


def test_an_unreachable_console_is_named_with_the_way_to_point_at_another(make_user):
    user = make_user("nobody", console="http://127.0.0.1:9")

    failed = user.run("login", "--key", "abc")

    assert failed.returncode == 1
    assert "The console at http://127.0.0.1:9 cannot be reached" in failed.stderr
    assert "REFRACT_CONSOLE" in failed.stderr


@pytest.mark.node
def test_the_prisma_cli_reads_the_registry_refract_wrote(olivia, owner, live_server):
    assert olivia.run("login", "--key", key_for(owner)).returncode == 0
    added = olivia.run("servers", "add", "vm", "http://127.0.0.1:4466", "--json").json()

    account = run_prisma(
        ["account"], home=olivia.home, env={"CLOUD_API_ENDPOINT": f"{live_server.url}/cloud-api"}
    )

    assert account.returncode == 0, account.stdout + account.stderr
    assert "owner@example.com" in account.stdout
    # And refract still finds its entry and the key in the file afterwards.
    listed = olivia.run("servers", "--json").json()["servers"]
    assert ("vm", "self-hosted") in [(s["cluster"], s["kind"]) for s in listed]
    assert olivia.run("account", "--json").json()["email"] == "owner@example.com"

    # `prisma1 logout` rewrites the file with `clusters: {}`: refract says how to add the
    # entry back with the key it kept, and the server still trusts that key.
    assert run_prisma(["logout"], home=olivia.home).returncode == 0
    (olivia.project / "prisma.yml").write_text("service: blog\ncluster: vm\ndatamodel: d.prisma\n")
    lost = olivia.run("deploy")
    assert lost.returncode == 1
    assert f"--key-file {added['private_key_file']}" in lost.stderr
    again = olivia.run(
        "servers", "add", "vm", "http://127.0.0.1:4466", "--key-file", added["private_key_file"],
        "--json",
    )  # fmt: skip
    assert again.returncode == 0, again.output
    assert again.json()["public_key"] == added["public_key"]
