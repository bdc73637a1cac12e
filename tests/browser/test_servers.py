"""A person provisions a sandbox in Chromium; a real Celery worker checks the region, a real
runtime process, and the page follows the status from provisioning to healthy."""

import os
import signal

import pytest
from playwright.sync_api import Page, expect

from servers.models import Server
from tests.conftest import PASSWORD
from tests.support.worker import celery_worker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
]

PAUSE = 1500  # ms a person takes to read before the next click


def sign_in(page: Page, email: str) -> None:
    page.goto("/sign-in/")
    page.get_by_label("Email").fill(email)
    page.wait_for_timeout(PAUSE)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_an_owner_provisions_a_sandbox_and_watches_it_become_healthy(
    new_page,
    regions,
    team,
    owner,
):
    page = new_page()
    sign_in(page, owner.email)
    page.goto("/w/acme/")
    page.wait_for_timeout(PAUSE)
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Servers").click()
    expect(page.get_by_text("No servers yet: provision a sandbox")).to_be_visible()
    expect(page.get_by_text("10 requests per 10 s")).to_be_visible()

    with celery_worker() as worker:
        # The worker is paused while the person reads the new page, so the page surely shows
        # the sandbox provisioning first; resumed, it checks the region and the page follows.
        os.kill(worker.pid, signal.SIGSTOP)
        try:
            page.get_by_label("Region").select_option("local")
            page.wait_for_timeout(PAUSE)
            page.get_by_role("button", name="Provision a sandbox").click()

            expect(page.get_by_role("heading", name="sandbox-local")).to_be_visible()
            expect(page.get_by_text("Provisioning the sandbox on local.")).to_be_visible()
            expect(page.get_by_label("Endpoint")).to_have_value(f"{regions['local']}/acme")
            expect(page.get_by_test_id("status")).to_have_text("Provisioning")
            expect(page.get_by_test_id("limits")).to_contain_text("queue of 25")
            expect(page.get_by_test_id("limits")).to_contain_text("100 MB")
            page.wait_for_timeout(PAUSE)
            expect(page.get_by_test_id("status")).to_have_text("Provisioning")
        finally:
            os.kill(worker.pid, signal.SIGCONT)

        expect(page.get_by_test_id("status")).to_have_text("Healthy", timeout=30_000)

    server = Server.objects.get(workspace=team)
    assert server.status == Server.Status.HEALTHY
    expect(page.locator("#server-status")).to_contain_text(server.version)
    expect(page.locator("[data-refresh]")).to_have_count(0)  # polling stopped

    page.wait_for_timeout(PAUSE)
    page.get_by_role("link", name="← All servers").click()
    row = page.locator('tr[data-server="sandbox-local"]')
    expect(row).to_contain_text("Healthy")
    expect(row).to_contain_text(f"{regions['local']}/acme")
    expect(row).to_contain_text(server.version)
    # The other region is still free; the one taken is no longer offered.
    expect(page.get_by_label("Region")).to_have_count(0)
    expect(page.locator('input[name="region"]')).to_have_value("gone")
