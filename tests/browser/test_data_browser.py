"""The playground and the data browser in Chromium, against services deployed by a real Celery
worker to the runtime as a real process: a member queries with the token the console minted,
then lists, filters, sorts, pages, creates, edits and deletes rows, follows a relation, and
meets the server's unique-constraint error on the form with what they typed still there."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import AuditAction, AuditEvent
from servers import deploys, services
from servers.models import Server, Service
from tests.browser.test_servers import sign_in
from tests.servers.conftest import empty_region
from tests.support.worker import celery_worker, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
]

READ = 600  # ms a person looks before the next click
LIBRARY = """
type Author {
  id: ID! @id
  name: String! @unique
  born: Int
  books: [Book!]!
}
type Book {
  id: ID! @id
  title: String!
  genre: Genre
  author: Author! @relation(link: INLINE)
}
enum Genre {
  NOVEL
  POETRY
}
"""


@pytest.fixture
def library(regions, platform_keys, team, owner, member):
    """Two services with the same datamodel (`library` and `twin`), deployed by a real worker."""
    empty_region(regions["local"], platform_keys.private_pem)
    with celery_worker():
        server = services.provision_sandbox(owner.user, team, "local")
        assert wait_until(
            lambda: Server.objects.get(id=server.id).status == Server.Status.HEALTHY, 60
        )
        server.refresh_from_db()
        made = [
            deploys.create_service(member.user, server, name, "dev", LIBRARY).service
            for name in ("library", "twin")
        ]
        assert wait_until(lambda: all(Service.objects.get(id=s.id).revision for s in made), 90), (
            "the worker did not deploy the services"
        )
    for service in made:
        service.refresh_from_db()
    yield made
    empty_region(server.endpoint, platform_keys.private_pem)


def base(service: Service) -> str:
    return f"/w/{service.server.workspace.slug}/services/{service.id}"


def run_query(page: Page, document: str) -> None:
    editor = page.locator(".graphiql-query-editor .CodeMirror").first
    editor.wait_for(timeout=20_000)
    page.evaluate(
        "text => document.querySelector('.graphiql-query-editor .CodeMirror')"
        ".CodeMirror.setValue(text)",
        document,
    )
    page.locator(".graphiql-execute-button").click()


def test_the_consoles_playground_queries_the_service_with_the_members_token(
    new_page, library, member
) -> None:
    service = library[0]
    page = new_page()
    sign_in(page, member.email)
    page.goto(base(service) + "/")
    page.wait_for_timeout(READ)
    page.locator("#open-playground").click()
    expect(page.locator(".graphiql-container")).to_be_visible(timeout=20_000)
    expect(page.locator("#playground-note")).to_contain_text("valid for 60 minutes")
    # The mutation and the read run across origins (console -> runtime) with the token.
    run_query(page, 'mutation { createAuthor(data: {name: "Ursula"}) { name } }')
    expect(page.locator(".graphiql-response")).to_contain_text('"Ursula"', timeout=20_000)
    run_query(page, "{ authors { name } }")
    expect(page.locator(".graphiql-response")).to_contain_text('"authors"', timeout=20_000)
    expect(page.locator(".graphiql-response")).to_contain_text('"Ursula"')
    # Introspection worked: the docs explorer knows the service's types.
    page.get_by_role("button", name="Show Documentation Explorer").click()
    page.get_by_text("Query", exact=True).first.click()
    expect(page.locator(".graphiql-doc-explorer")).to_contain_text("authors", timeout=10_000)


def test_the_data_browser_from_listing_to_deleting(new_page, library, member) -> None:
    service, twin = library
    page = new_page()
    sign_in(page, member.email)
    page.goto(base(service) + "/")
    page.locator("#open-data").click()
    expect(page.locator("#data-title")).to_contain_text("Author")
    expect(page.get_by_test_id("row-count")).to_have_text("0 rows")

    # Create: a required field left empty is refused before the server, then 22 authors.
    page.locator("#new-row").click()
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#row-form")).to_contain_text("This field is required")
    for i in range(22):
        page.goto(base(service) + "/data/Author/new/")
        page.get_by_label("name").fill(f"Author {i:02}")
        page.get_by_label("born").fill(str(1900 + i))
        page.get_by_role("button", name="Create").click()
        expect(page.locator(".messages")).to_contain_text("Created Author")
    page.goto(base(service) + "/data/Author/")
    expect(page.get_by_test_id("row-count")).to_have_text("22 rows")
    expect(page.locator("#data-table tbody tr")).to_have_count(20)

    # Pages, sorting both ways, the search box.
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#data-table tbody tr")).to_have_count(2)
    page.wait_for_timeout(READ)
    page.locator('a[data-sort="born"]').click()
    expect(page.locator("#data-table tbody tr").first).to_contain_text("1900")
    page.locator('a[data-sort="born"]').click()
    expect(page.locator("#data-table tbody tr").first).to_contain_text("1921")
    expect(page.locator('th[aria-sort="descending"]')).to_contain_text("born")
    page.get_by_label("Search").fill("Author 07")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#data-table tbody tr")).to_have_count(1)
    expect(page.locator("#data-table")).to_contain_text("1907")

    # The unique constraint, from the server, on the field; what was typed stays.
    page.goto(base(service) + "/data/Author/new/")
    page.get_by_label("name").fill("Author 07")
    page.get_by_label("born").fill("1999")
    page.get_by_role("button", name="Create").click()
    name_field = page.locator(".field", has=page.get_by_label("name"))
    expect(name_field).to_contain_text("Another Author already has this name")
    expect(page.get_by_label("name")).to_have_value("Author 07")
    expect(page.get_by_label("born")).to_have_value("1999")

    # A book for Author 07, picked by id; then the relation, one click each way.
    page.goto(base(service) + "/data/Author/?q=Author+07")
    author_id = page.locator("#data-table tbody tr").first.get_attribute("data-row")
    page.goto(base(service) + "/data/Book/new/")
    page.get_by_label("title").fill("The Dispossessed")
    page.get_by_label("genre").select_option("NOVEL")
    page.get_by_label("author").fill(author_id)
    page.get_by_role("button", name="Create").click()
    expect(page.locator(".messages")).to_contain_text("Created Book")
    page.locator('[data-relation="author"]').click()
    expect(page.locator("#row-title")).to_contain_text(author_id)
    expect(page.get_by_label("name")).to_have_value("Author 07")
    page.locator('[data-relation="books"]').click()
    expect(page.get_by_test_id("via")).to_contain_text("Author.books")
    expect(page.locator("#data-table tbody tr")).to_have_count(1)
    expect(page.locator("#data-table")).to_contain_text("The Dispossessed")

    # Edit the author, then delete another.
    page.goto(f"{base(service)}/data/Author/{author_id}/")
    page.get_by_label("name").fill("Ursula K. Le Guin")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved Author")
    expect(page.get_by_label("name")).to_have_value("Ursula K. Le Guin")
    page.goto(base(service) + "/data/Author/?q=Author+00")
    page.locator("#data-table tbody tr a").first.click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete Author").click()
    expect(page.locator(".messages")).to_contain_text("Deleted Author")
    expect(page.get_by_test_id("row-count")).to_have_text("21 rows")

    # The twin service, same datamodel: none of these rows.
    page.goto(base(twin) + "/data/Author/")
    expect(page.get_by_test_id("row-count")).to_have_text("0 rows")
    page.goto(base(twin) + "/data/Book/")
    expect(page.locator("#no-rows")).to_be_visible()

    actions = list(
        AuditEvent.objects.filter(action__startswith="data.").values_list("action", flat=True)
    )
    assert actions.count(AuditAction.DATA_ROW_CREATED) == 23
    assert actions.count(AuditAction.DATA_ROW_UPDATED) == 1
    assert actions.count(AuditAction.DATA_ROW_DELETED) == 1
    assert re.fullmatch(r"c[a-z0-9]{24}", author_id)
