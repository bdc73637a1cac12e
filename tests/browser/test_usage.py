"""A service's usage in Chromium: after a burst the sandbox throttles, the service page draws its
graphs with data, says it was throttled (with the Throttled-By values), lists the operations
(one click shows a document), and the Services tab shows the requests and the warning. An
outsider gets 404 on the page and its JSON."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_servers import PAUSE, sign_in
from tests.servers.test_service_views import live_service
from tests.servers.test_usage_views import (  # noqa: F401 - fixtures
    burst,
    post,
    sandbox,
    throttled_region,
    usage_url,
    wait_for_usage,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
]

# Pixels of the requests line's colour (#3b5bdb) on a chart's canvas: the series was drawn,
# not only the axes and the grid.
SERIES_PIXELS = """(id) => {
  const canvas = document.querySelector(`#${id} canvas`);
  const context = canvas.getContext("2d");
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  let count = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && data[i + 2] > 180 && data[i] < 110 && data[i + 1] < 140) count++;
  }
  return count;
}"""


def test_the_service_page_graphs_the_usage_and_shows_the_throttling(
    new_page,
    sandbox,  # noqa: F811 - the fixture imported above
    owner_client,
    member,
    member_client,
    outsider,
):
    service = live_service(owner_client, sandbox, protect=None)
    _, refused = burst(service.endpoint, 8)
    assert refused > 0
    time.sleep(1.5)  # the bucket fills again
    post(service.endpoint, '{ posts(where: {title: "x"}) { id } }')
    wait_for_usage(member_client, service, 9)

    page: Page = new_page()
    sign_in(page, member.email)
    page.goto(f"/w/acme/services/{service.id}/")
    panel = page.locator("#usage")
    expect(panel).to_have_attribute("data-loaded", "hour", timeout=15_000)

    banner = page.locator("#usage-throttled")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"{refused} refused (code 1004")
    expect(banner).to_contain_text("Recent Throttled-By values:")
    expect(banner).to_contain_text("This is the limit, not slowness.")
    for chart in ("chart-requests", "chart-throttle", "chart-latency", "chart-storage"):
        expect(page.locator(f"#{chart} canvas")).to_have_count(1)
    drawn = page.locator("#chart-requests").get_attribute("data-drawn") or "0"
    assert int(drawn.split(",")[0]) > 0  # minutes with requests
    assert page.evaluate(SERIES_PIXELS, "chart-requests") > 20
    expect(page.locator("#usage-totals")).to_contain_text("Refused (1004)")

    rows = page.get_by_test_id("usage-operations").locator("tbody tr")
    expect(rows).to_have_count(2)
    notes = rows.filter(has_text="Notes")
    expect(notes.locator("td").nth(1)).to_have_text(str(8 - refused))
    page.wait_for_timeout(PAUSE)
    notes.click()
    expect(page.locator("#usage-document")).to_be_visible()
    expect(page.locator("#usage-document-text")).to_have_text("query Notes{posts{id}}")
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#usage-document")).to_be_hidden()

    page.get_by_role("button", name="Last week").click()
    expect(panel).to_have_attribute("data-loaded", "week", timeout=15_000)
    expect(page.locator("#chart-requests")).to_have_attribute("data-points", "168")

    page.wait_for_timeout(PAUSE)
    page.get_by_role("link", name="← All services").click()
    row = page.locator(f'tr[data-service-id="{service.id}"]')
    expect(row.get_by_test_id("usage-requests")).to_contain_text("9")
    expect(row.get_by_test_id("throttled-warning")).to_be_visible()
    expect(row.get_by_test_id("usage-storage")).to_contain_text("MB of 100 MB")

    # The workspace overview: the same figures at a glance, beside the servers.
    page.wait_for_timeout(PAUSE)
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Overview").click()
    expect(page.get_by_test_id("overview-servers")).to_contain_text(service.server.name)
    expect(page.get_by_text("No servers yet")).to_have_count(0)
    row = page.get_by_test_id("overview-services").locator(f'tr[data-service-id="{service.id}"]')
    expect(row.get_by_test_id("usage-requests")).to_contain_text("9")
    expect(row.get_by_test_id("throttled-warning")).to_be_visible()
    expect(row.get_by_test_id("usage-storage")).to_contain_text("MB of 100 MB")

    stranger = new_page()
    sign_in(stranger, outsider.email)
    for url in (f"/w/acme/services/{service.id}/", usage_url(service)):
        assert stranger.goto(url).status == 404
