"""The product's core loop in Chromium, at a person's pace, with a real Celery worker, the
runtime as a real process and real PostgreSQL: provision a sandbox, create a service from the
blog starter, watch the deploy succeed, run the page's own `curl`, edit the datamodel (dry run,
diff, deploy) and roll back to the first revision."""

from __future__ import annotations

import json
import subprocess

import pytest
from playwright.sync_api import Page, expect

from servers.models import Deploy, Service
from tests.browser.test_servers import PAUSE, sign_in
from tests.servers.conftest import empty_region
from tests.support.worker import celery_worker

pytestmark = [
    pytest.mark.browser,
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
]

NOTE = "\ntype Note {\n  id: ID! @id\n  text: String!\n}\n"


def run_page_curl(page: Page, token: str, query: str | None = None) -> dict:
    """The example request the page shows, pasted into a shell with the token in place of its
    placeholder (once shown, the token is not on the page again), optionally another query."""
    command = page.locator("#service-curl").inner_text().replace("<token>", token)
    if query is not None:
        command = command.rsplit("--data", 1)[0] + "--data " + _quote(json.dumps({"query": query}))
    done = subprocess.run(
        ["sh", "-c", command + " --silent --show-error --max-time 20"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def wait_for_deploy(page: Page, status: str = "succeeded") -> None:
    expect(page.locator("#deploy-live")).to_have_attribute(
        "data-deploy-status", status, timeout=30_000
    )


def test_from_nothing_to_a_queried_service_then_edit_and_roll_back(
    new_page, regions, platform_keys, team, owner
):
    empty_region(regions["local"], platform_keys.private_pem)
    page = new_page()
    sign_in(page, owner.email)
    with celery_worker():
        page.goto("/w/acme/servers/")
        page.wait_for_timeout(PAUSE)
        page.get_by_label("Region").select_option("local")
        page.get_by_role("button", name="Provision a sandbox").click()
        expect(page.get_by_test_id("status")).to_have_text("Healthy", timeout=30_000)

        # One click from nothing to a working endpoint.
        page.wait_for_timeout(PAUSE)
        tabs = page.get_by_role("navigation", name="Workspace")
        tabs.get_by_role("link", name="Services").click()
        expect(page.get_by_role("heading", name="No services yet")).to_be_visible()
        page.locator("#new-service-button").click()
        page.get_by_label("Name").fill("blog")
        page.wait_for_timeout(PAUSE)
        page.get_by_label("Blog").check()
        page.wait_for_timeout(PAUSE)
        page.get_by_role("button", name="Create and deploy").click()

        wait_for_deploy(page)
        expect(page.get_by_test_id("deploy-steps")).to_contain_text("Post")
        expect(page.get_by_label("Endpoint")).to_have_value(f"{regions['local']}/acme/blog/dev")
        token = page.get_by_label("Service token").input_value()
        assert token.count(".") == 2  # a JWT, shown once

        # The page's curl works as shown; with a mutation in its place, data comes back.
        page.wait_for_timeout(PAUSE)
        assert run_page_curl(page, token) == {"data": {"posts": []}}
        created = run_page_curl(
            page,
            token,
            'mutation { createUser(data: {name: "Ada", email: "ada@example.com",'
            ' posts: {create: {title: "Hello"}}}) { name posts { title } } }',
        )
        assert created == {"data": {"createUser": {"name": "Ada", "posts": [{"title": "Hello"}]}}}
        assert run_page_curl(page, token)["data"]["posts"][0]["title"] == "Hello"

        # The token is not shown again.
        page.locator("#service-link").click()
        expect(page.get_by_test_id("token-hidden")).to_be_visible()
        expect(page.get_by_label("Service token")).to_have_count(0)
        expect(page.get_by_test_id("service-revision")).to_have_text("2")

        # Edit: a dry run shows the steps and changes nothing.
        textarea = page.get_by_label("Edit datamodel")
        original = textarea.input_value()
        page.wait_for_timeout(PAUSE)
        textarea.fill(original + NOTE)
        page.get_by_role("button", name="Dry run").click()
        wait_for_deploy(page)
        expect(page.get_by_test_id("deploy-steps")).to_contain_text("Note")
        service = Service.objects.get(name="blog")
        assert service.revision == 2

        # Deploy it: the diff shows the new type, the revision moves on.
        page.locator("#service-link").click()
        page.get_by_label("Edit datamodel").fill(original + NOTE)
        page.wait_for_timeout(PAUSE)
        page.get_by_role("button", name="Deploy", exact=True).click()
        wait_for_deploy(page)
        expect(page.get_by_test_id("deploy-diff")).to_contain_text("type Note {")
        expect(page.get_by_test_id("deploy-revision")).to_have_text("3")

        # Roll back to the first revision from the history.
        page.locator("#service-link").click()
        first = Deploy.objects.get(service=service, revision=2, dry_run=False)
        page.wait_for_timeout(PAUSE)
        page.locator(f'tr[data-deploy="{first.id}"]').get_by_role("link").click()
        page.get_by_role("button", name="Redeploy this revision").click()
        wait_for_deploy(page)
        expect(page.get_by_test_id("deploy-revision")).to_have_text("4")
        expect(page.get_by_test_id("deploy-diff")).to_contain_text("type Note {")

    service.refresh_from_db()
    assert (service.revision, service.datamodel) == (4, first.datamodel)
    page.locator("#service-link").click()
    # The data survived the round trip; the removed type is gone from the API.
    assert run_page_curl(page, token)["data"]["posts"][0]["title"] == "Hello"
    assert "errors" in run_page_curl(page, token, "{ notes { id } }")
