"""The real Prisma 1 CLI against a live console, with Chromium doing the browser half."""

import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect

from accounts import cli_login
from accounts.models import CliLoginRequest, SessionKey
from tests.support.prisma_cli import prisma_cli, run_prisma

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.node,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def cli_env(live_server, settings) -> dict[str, str]:
    # Five seconds is redis-py's default socket timeout: the hold that used to fail every login
    # with "Timeout reading from socket" unless Authorize was clicked within a second or so.
    settings.CLI_LOGIN_HOLD_SECONDS = 5
    return {
        "CLOUD_API_ENDPOINT": f"{live_server.url}/cloud-api",
        "CONSOLE_ENDPOINT": "dev",
        # The CLI tries to open a browser; Chromium is driven by the test instead.
        "BROWSER": "true",
    }


def config(home: Path) -> dict:
    path = home / ".prisma" / "config.yml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def sign_in(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


class Cli:
    """`prisma1` running in the background, its output collected as it comes."""

    def __init__(self, args: list[str], home: Path, env: dict[str, str]) -> None:
        self.output = ""
        self.process = subprocess.Popen(
            [str(prisma_cli()), *args],
            cwd=home,
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "NO_UPDATE_NOTIFIER": "1",
                 "STATS_ENDPOINT": "http://127.0.0.1:9/", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.output += line

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.process.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} never appeared in:\n{self.output}")

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code


def test_prisma_login_in_the_browser(owner, new_page, cli_env, tmp_path):
    cli = Cli(["login"], tmp_path, cli_env)
    url = cli.wait_for(r"http://localhost:3000(/cli-auth\?secret=[\w-]+)")

    page = new_page()
    page.goto(url.group(1))  # the same path, on the live console's port
    sign_in(page, owner.email, owner.password)
    expect(page.get_by_role("heading", name="Authorize a command-line login?")).to_be_visible()
    expect(page.get_by_text("Prisma 1 CLI")).to_be_visible()
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="CLI authorized")).to_be_visible()

    assert cli.finish() == 0, cli.output
    assert f"Authenticated with {owner.email}" in cli.output
    key = config(tmp_path)["cloudSessionKey"]
    assert SessionKey.objects.get(user=owner.user).name.startswith("Prisma 1 CLI")
    account = run_prisma(["account"], home=tmp_path, env=cli_env)
    assert f"Email: {owner.email}" in account.stdout
    assert key


def test_login_with_a_console_key_then_logout_and_revocation(owner, new_page, cli_env, tmp_path):
    page = new_page()
    page.goto("/settings/keys/")
    sign_in(page, owner.email, owner.password)
    page.get_by_label("Name").fill("CI deploy")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-key").input_value().strip()

    login = run_prisma(["login", "--key", key], home=tmp_path, env=cli_env)
    assert login.returncode == 0, login.stdout + login.stderr
    assert "Successfully signed in" in login.stdout
    assert config(tmp_path)["cloudSessionKey"] == key
    account = run_prisma(["account"], home=tmp_path, env=cli_env)
    assert f"Email: {owner.email}" in account.stdout

    logout = run_prisma(["logout"], home=tmp_path, env=cli_env)
    assert logout.returncode == 0
    assert "cloudSessionKey" not in config(tmp_path)

    run_prisma(["login", "--key", key], home=tmp_path, env=cli_env)
    page.goto("/settings/keys/")  # not a reload: that would post the create form again
    page.once("dialog", lambda dialog: dialog.accept())  # "Revoke “CI deploy”?"
    page.locator("tr", has_text="CI deploy").get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("It stops working immediately")).to_be_visible()

    after = run_prisma(["account"], home=tmp_path, env=cli_env)
    assert after.returncode == 0
    assert "Currently not logged in" in after.stdout


def open_approval_page(cli: Cli, new_page, persona) -> Page:
    url = cli.wait_for(r"http://localhost:3000(/cli-auth\?secret=[\w-]+)")
    page = new_page()
    page.goto(url.group(1))
    sign_in(page, persona.email, persona.password)
    expect(page.get_by_role("heading", name="Authorize a command-line login?")).to_be_visible()
    return page


def test_prisma_login_when_the_person_takes_their_time(owner, new_page, cli_env, tmp_path):
    """A person reads the page before clicking: 10 s and more, several held polls."""
    cli = Cli(["login"], tmp_path, cli_env)
    page = open_approval_page(cli, new_page, owner)
    opened = time.monotonic()
    expect(page.get_by_test_id("full-access")).to_be_visible()

    time.sleep(max(0.0, 10.5 - (time.monotonic() - opened)))  # the person's delay, not a check
    assert cli.process.poll() is None, cli.output  # still waiting, no socket timeout
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="CLI authorized")).to_be_visible()

    assert cli.finish() == 0, cli.output
    assert "Timeout" not in cli.output and "ERROR" not in cli.output
    assert f"Authenticated with {owner.email}" in cli.output
    assert config(tmp_path)["cloudSessionKey"]
    assert SessionKey.objects.filter(user=owner.user).count() == 1


def test_approving_after_the_cli_was_killed_mints_no_key(
    owner, new_page, cli_env, settings, tmp_path
):
    settings.CLI_LOGIN_HOLD_SECONDS = 2  # the default
    cli = Cli(["login"], tmp_path, cli_env)
    page = open_approval_page(cli, new_page, owner)

    cli.process.kill()  # Ctrl-C, a closed terminal
    cli.finish()
    login = CliLoginRequest.objects.get()
    deadline = time.monotonic() + 60
    while cli_login.client_is_waiting(login) and time.monotonic() < deadline:
        time.sleep(0.25)  # until the server has missed enough polls to know
        login.refresh_from_db()
    page.get_by_role("button", name="Authorize").click()

    expect(
        page.get_by_role("heading", name="The command-line tool is no longer waiting")
    ).to_be_visible()
    expect(page.get_by_text("CLI authorized")).to_have_count(0)
    assert not SessionKey.objects.exists()
    assert CliLoginRequest.objects.get().status == "pending"
    page.reload()
    expect(
        page.get_by_role("heading", name="The command-line tool is no longer waiting")
    ).to_be_visible()
    expect(page.get_by_role("button", name="Authorize")).to_have_count(0)
