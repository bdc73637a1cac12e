"""The data browser and the playground page, through the console's views, against services
deployed to a real runtime (the deploy task run in-process, as in test_deploys): reads, writes,
the server's errors on the form, tenants that never meet, audit events, and strangers' 404s."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import jwt
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import services as accounts_services
from accounts.models import AuditAction, AuditEvent
from servers import deploys, private, runs, services
from servers.data_browser import MAX_EDITABLE_IDS, PAGE_SIZE
from servers.models import Deploy, Server, Service

# The fixtures (regions, platform_keys, the private platform) come from tests/servers/conftest.py;
# imported here they would be module copies, with a key pair of their own that the session's
# platform runtime, when first made for a test of this module, would keep for every other module.
from tests.servers.conftest import empty_region

pytestmark = [pytest.mark.multiprocess]

SHOP = """
type Customer {
  id: ID! @id
  email: String! @unique
  name: String!
  age: Int
  tier: Tier! @default(value: BASIC)
  born: DateTime
  notes: Json
  vip: Boolean
  tags: [String] @scalarList(strategy: RELATION)
  orders: [Order!]!
  createdAt: DateTime! @createdAt
}
type Order {
  id: ID! @id
  label: String!
  customer: Customer! @relation(link: INLINE)
}
enum Tier {
  BASIC
  GOLD
}
"""


@pytest.fixture
def sandbox(regions, team, owner, platform_keys, django_capture_on_commit_callbacks):
    empty_region(regions["local"], platform_keys.private_pem)
    with django_capture_on_commit_callbacks(execute=False):
        server = services.provision_sandbox(owner.user, team, "local")
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY
    yield server
    empty_region(server.endpoint, platform_keys.private_pem)


def deployed(user, server: Server, name: str, django_capture_on_commit_callbacks) -> Service:
    with django_capture_on_commit_callbacks(execute=False):
        created = deploys.create_service(user, server, name, "dev", SHOP)
    assert runs.run_deploy(str(created.deploy.id)) == Deploy.Status.SUCCEEDED
    created.service.refresh_from_db()
    return created.service


@pytest.fixture
def shop(sandbox, member, django_capture_on_commit_callbacks) -> Service:
    return deployed(member.user, sandbox, "shop", django_capture_on_commit_callbacks)


def url(service: Service, name: str, *args: object, query: str = "") -> str:
    path = reverse(f"servers:{name}", args=[service.server.workspace.slug, service.id, *args])
    return path + (f"?{query}" if query else "")


def customer(client: Client, service: Service, status: int = 302, **fields: str):
    values = {"email": "", "name": "", "tier": "BASIC", **fields}
    response = client.post(url(service, "data-new", "Customer"), values)
    assert response.status_code == status, response.content.decode()[-3000:]
    return response


def new_id(response) -> str:
    return response["Location"].rstrip("/").rsplit("/", 1)[1]


def listed(client: Client, service: Service, query: str = "", model: str = "Customer") -> str:
    response = client.get(url(service, "data-rows", model, query=query))
    assert response.status_code == 200, response.content.decode()[-2000:]
    return response.content.decode()


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-row="([^"]+)"', html)


def cells(html: str, column: int) -> list[str]:
    rows = re.findall(r"<tr data-row=.*?</tr>", html, re.S)
    return [
        re.sub(r"<[^>]+>", "", re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)[column]) for r in rows
    ]


def test_a_member_creates_lists_filters_sorts_and_pages_rows(
    shop, member_client, django_assert_max_num_queries
) -> None:
    for i in range(PAGE_SIZE + 3):
        customer(member_client, shop, email=f"c{i:02}@x.example", name=f"Name {i:02}", age=str(i))
    # The console's own queries do not grow with the rows (one GraphQL call fetches the page).
    with CaptureQueriesContext(connection) as one_row:
        listed(member_client, shop, "q=Name+07")
    with django_assert_max_num_queries(len(one_row)):
        first = listed(member_client, shop)
    assert f"{PAGE_SIZE + 3} rows" in first and len(row_ids(first)) == PAGE_SIZE
    assert "Page 1 of 2" in first
    second = listed(member_client, shop, "page=2")
    assert len(row_ids(second)) == 3 and not set(row_ids(second)) & set(row_ids(first))
    # Sorted by age, both ways (column 3 is `age`).
    assert cells(listed(member_client, shop, "order=age&dir=desc"), 3)[:3] == ["22", "21", "20"]
    assert cells(listed(member_client, shop, "order=age&dir=asc"), 3)[:3] == ["0", "1", "2"]
    # The search box looks into the String fields; a field/value pair filters exactly.
    found = listed(member_client, shop, "q=Name+07")
    assert len(row_ids(found)) == 1 and "c07@x.example" in found
    assert len(row_ids(listed(member_client, shop, "field=age&value=5"))) == 1
    bad = member_client.get(url(shop, "data-rows", "Customer", query="field=age&value=five"))
    assert bad.status_code == 400 and "enter a whole number" in bad.content.decode()
    assert member_client.get(url(shop, "data-rows", "Nope")).status_code == 404


def test_every_kind_of_field_is_written_and_edited(shop, member_client) -> None:
    created = customer(
        member_client, shop, email="ada@x.example", name="Ada", age="36", tier="GOLD",
        born="1815-12-10T00:00:00Z", notes='{"likes": ["engines"]}', vip="true",
        tags="math\npoetry",
    )  # fmt: skip
    ada = new_id(created)
    page = member_client.get(url(shop, "data-row", "Customer", ada)).content.decode()
    for shown in ("ada@x.example", "GOLD", "1815-12-10T00:00:00", "engines", "math\npoetry"):
        assert shown in page.replace("&quot;", '"')
    assert "createdAt" in page  # kept by the server, shown read-only
    order = member_client.post(
        url(shop, "data-new", "Order"), {"label": "Analytical engine", "customer": ada}
    )
    assert order.status_code == 302, order.content.decode()[-2000:]
    # Edit: only what changed is sent; emptying an optional field nulls it.
    edited = member_client.post(
        url(shop, "data-row", "Customer", ada),
        {"email": "ada@x.example", "name": "Ada Lovelace", "age": "", "tier": "GOLD",
         "born": "1815-12-10T00:00:00Z", "notes": '{"likes": ["engines"]}', "vip": "true",
         "tags": "math", "orders": new_id(order)},
    )  # fmt: skip
    assert edited.status_code == 302, edited.content.decode()[-2000:]
    event = AuditEvent.objects.filter(action=AuditAction.DATA_ROW_UPDATED).get()
    assert event.detail["fields"] == ["age", "name", "tags"]
    assert event.detail["model"] == "Customer" and event.detail["row"] == ada
    row = listed(member_client, shop, f"q={ada}")
    assert "Ada Lovelace" in row and cells(row, 3) == ["—"] and cells(row, 8) == ["math"]


def test_relations_are_one_click_away_both_ways(shop, member_client) -> None:
    ada = new_id(customer(member_client, shop, email="ada@x.example", name="Ada"))
    bob = new_id(customer(member_client, shop, email="bob@x.example", name="Bob"))
    for label, owner in (("one", ada), ("two", ada), ("three", bob)):
        member_client.post(url(shop, "data-new", "Order"), {"label": label, "customer": owner})
    customers = listed(member_client, shop, f"q={ada}")
    link = re.search(r'href="([^"]*via=Customer.orders[^"]*)"', customers).group(1)
    orders = member_client.get(link.replace("&amp;", "&")).content.decode()
    assert sorted(cells(orders, 1)) == ["one", "two"] and "Customer.orders of" in orders
    # From an order, its customer's row.
    order_link = re.search(rf'href="([^"]*/data/Customer/{ada}/)"', orders).group(1)
    assert "Ada" in member_client.get(order_link).content.decode()


def test_the_servers_unique_error_is_on_the_field_and_the_typed_values_stay(
    shop, member_client
) -> None:
    customer(member_client, shop, email="ada@x.example", name="Ada")
    refused = customer(
        member_client, shop, 400, email="ada@x.example", name="Someone else", age="41",
        notes='{"a": 1}',
    )  # fmt: skip
    page = refused.content.decode()
    email_field = page[page.index('for="id_email"') : page.index('for="id_name"')]
    assert "Another Customer already has this email" in email_field
    assert 'value="Someone else"' in page and 'value="41"' in page and "{&quot;a&quot;: 1}" in page
    assert len(row_ids(listed(member_client, shop))) == 1
    # Bad values never reach the server and are kept too.
    bad = customer(member_client, shop, 400, email="x@x.example", name="X", age="old",
                   notes="{oops", born="yesterday")  # fmt: skip
    text = bad.content.decode()
    assert "enter a whole number" in text and "not JSON" in text and "such as" in text
    assert 'value="old"' in text and 'value="yesterday"' in text
    assert not AuditEvent.objects.filter(action=AuditAction.DATA_ROW_CREATED, detail__row="")


def test_values_travel_as_variables_never_in_the_document(shop, member_client) -> None:
    hostile = 'x") { id } deleteManyCustomers { count } createCustomer(data: {email: "y'
    ada = new_id(customer(member_client, shop, email="ada@x.example", name=hostile))
    assert hostile in listed(member_client, shop, f"q={ada}").replace("&quot;", '"')
    assert len(row_ids(listed(member_client, shop, "q=" + quote(hostile)))) == 1


def test_delete_removes_the_row_and_every_edit_is_audited(shop, member_client, member) -> None:
    ada = new_id(customer(member_client, shop, email="ada@x.example", name="Ada"))
    response = member_client.post(url(shop, "data-delete", "Customer", ada))
    assert response.status_code == 302
    assert row_ids(listed(member_client, shop)) == []
    events = AuditEvent.objects.filter(action__startswith="data.").order_by("created_at")
    assert [(e.action, e.actor, e.detail["row"]) for e in events] == [
        (AuditAction.DATA_ROW_CREATED, member.user, ada),
        (AuditAction.DATA_ROW_DELETED, member.user, ada),
    ]
    assert events[0].workspace == shop.server.workspace
    assert events[0].detail["service"] == str(shop.id)
    # Deleting it again: the server's answer, and nothing recorded.
    again = member_client.post(url(shop, "data-delete", "Customer", ada), follow=True)
    assert "Not deleted" in again.content.decode()
    assert events.count() == 2


def test_two_services_with_the_same_datamodel_never_show_each_others_rows(
    shop, sandbox, owner, member_client, django_capture_on_commit_callbacks
) -> None:
    twin = deployed(owner.user, sandbox, "twin", django_capture_on_commit_callbacks)
    customer(member_client, shop, email="ada@x.example", name="Ada")
    customer(member_client, twin, email="bob@x.example", name="Bob")
    ours, theirs = listed(member_client, shop), listed(member_client, twin)
    assert "ada@x.example" in ours and "bob@x.example" not in ours
    assert "bob@x.example" in theirs and "ada@x.example" not in theirs
    # A row id of one service is not a row of the other.
    ada = row_ids(ours)[0]
    assert member_client.get(url(twin, "data-row", "Customer", ada)).status_code == 404


def test_the_playground_page_carries_a_short_lived_token_for_the_service(
    shop, member_client
) -> None:
    page = member_client.get(url(shop, "playground")).content.decode()
    config = json.loads(re.search(r'id="playground-config"[^>]*>(.*?)</script>', page).group(1))
    assert config["endpoint"] == shop.endpoint
    claims = jwt.decode(config["token"], shop.secret_value, algorithms=["HS256"])
    assert claims["data"]["service"] == "shop@dev"
    assert claims["exp"] - claims["iat"] == 3600
    assert "/static/vendor/graphiql/graphiql.min.js" in page
    assert url(shop, "playground") in member_client.get(url(shop, "service")).content.decode()


def test_go_admin_opens_the_members_data_browser(shop, member_client, outsider_client) -> None:
    wanted = quote(shop.endpoint + "/", safe="")
    response = member_client.get(f"/go/admin?endpoint={wanted}")
    assert response.status_code == 302 and response["Location"] == url(shop, "data")
    assert member_client.get(response["Location"]).status_code == 302  # to the first model
    assert outsider_client.get(f"/go/admin?endpoint={wanted}").status_code == 404
    for unknown in ("http://elsewhere.example/a/b/c", "not a url", ""):
        assert member_client.get(f"/go/admin?endpoint={quote(unknown)}").status_code == 404
    assert Client().get(f"/go/admin?endpoint={wanted}").status_code == 302  # to sign in


def test_outsiders_get_404_on_every_page_and_action(
    shop, member_client, outsider, outsider_client
) -> None:
    ada = new_id(customer(member_client, shop, email="ada@x.example", name="Ada"))
    # Even in a workspace of their own, with a server and the same slug tricks.
    accounts_services.create_workspace(user=outsider.user, name="Other", slug="other")
    pages = [
        url(shop, "playground"),
        url(shop, "data"),
        url(shop, "data-rows", "Customer"),
        url(shop, "data-new", "Customer"),
        url(shop, "data-row", "Customer", ada),
    ]
    for path in pages:
        assert outsider_client.get(path).status_code == 404, path
        swapped = path.replace("/w/acme/", "/w/other/")
        assert outsider_client.get(swapped).status_code == 404, swapped
    for path in [url(shop, "data-new", "Customer"), url(shop, "data-row", "Customer", ada),
                 url(shop, "data-delete", "Customer", ada)]:  # fmt: skip
        assert outsider_client.post(path, {"email": "x@x.example", "name": "X"}).status_code == 404
    assert row_ids(listed(member_client, shop)) == [ada]
    assert "Ada" in listed(member_client, shop)


def test_a_service_with_nothing_deployed_says_so_and_an_open_one_needs_no_token(
    sandbox, member, member_client
) -> None:
    service = Service.objects.create(server=sandbox, name="empty", stage="dev")
    page = member_client.get(url(service, "data")).content.decode()
    assert 'id="data-empty"' in page
    # No secret: the playground needs no token and says so.
    page = member_client.get(url(service, "playground")).content.decode()
    config = json.loads(re.search(r'id="playground-config"[^>]*>(.*?)</script>', page).group(1))
    assert config == {"endpoint": service.endpoint, "token": ""}
    assert "needs no token" in page


SHELVES = """
type Shelf {
  key: ID! @id
  label: String! @unique
  items: [Item]
  best: Item @relation(name: "Best")
}
type Item {
  id: ID! @id
  name: String!
}
"""


def test_relations_without_a_field_back_and_ids_of_other_names(
    sandbox, member, member_client, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        created = deploys.create_service(member.user, sandbox, "shelves", "dev", SHELVES)
    deploy = runs.run_deploy(str(created.deploy.id))
    assert deploy == Deploy.Status.SUCCEEDED, Deploy.objects.get(id=created.deploy.id).reason
    service = created.service
    service.refresh_from_db()
    items = []
    for name in ("pen", "ink", "nib"):
        response = member_client.post(url(service, "data-new", "Item"), {"name": name})
        assert response.status_code == 302, response.content.decode()[-2000:]
        items.append(new_id(response))
    response = member_client.post(
        url(service, "data-new", "Shelf"),
        {"label": "desk", "items": f"{items[0]}\n{items[1]}", "best": items[1]},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    shelf = new_id(response)
    page = member_client.get(url(service, "data-row", "Shelf", shelf)).content.decode()
    assert f"{items[0]}\n{items[1]}" in page  # the to-many relation's ids, one per line
    linked = listed(member_client, service, f"via=Shelf.items&of={shelf}", model="Item")
    assert sorted(cells(linked, 1)) == ["ink", "pen"]
    shelves = listed(member_client, service, model="Shelf")
    assert f"/data/Item/{items[1]}/" in shelves  # `best`, a to-one link
    # Emptying the to-many relation disconnects all; the to-one is kept.
    member_client.post(
        url(service, "data-row", "Shelf", shelf), {"label": "desk", "items": "", "best": items[1]}
    )
    assert (
        row_ids(listed(member_client, service, f"via=Shelf.items&of={shelf}", model="Item")) == []
    )
    bad = member_client.get(url(service, "data-rows", "Item", query="via=Shelf.nope&of=x"))
    assert bad.status_code == 400 and "does not lead to Item" in bad.content.decode()


def test_a_private_servers_service_is_browsed_through_the_platform_runtime(
    private_platform, platform_runtime, settings, user_database, team, owner, member,
    member_client, django_capture_on_commit_callbacks,
) -> None:  # fmt: skip
    """The console reaches a private server's service where it reaches its management API
    (PRIVATE_SERVER_RUNTIME, under the server's host name), not at its public endpoint: here
    a name no resolver knows."""
    port = platform_runtime.url.rsplit(":", 1)[1]
    settings.PRIVATE_SERVER_ENDPOINT = f"http://{{server}}.private.invalid:{port}"
    with django_capture_on_commit_callbacks(execute=False):
        server = private.create_private_server(owner.user, team, "vault", user_database)
    services.run_provisioning(str(server.id))
    server.refresh_from_db()
    assert server.status == Server.Status.HEALTHY, server.status_reason
    service = deployed(member.user, server, "shop", django_capture_on_commit_callbacks)
    assert service.endpoint == f"http://vault-acme.private.invalid:{port}/shop/dev"

    ada = new_id(customer(member_client, service, email="ada@x.example", name="Ada"))
    assert row_ids(listed(member_client, service)) == [ada]


def test_a_to_many_relation_too_long_to_edit_whole_is_read_only(shop, member_client) -> None:
    api = shop.data_client(deploys.service_token(shop))
    orders = [{"label": f"order {i}"} for i in range(MAX_EDITABLE_IDS + 1)]
    created = api.call(
        "mutation($orders: [OrderCreateWithoutCustomerInput!]) { createCustomer(data: "
        '{email: "big@x.example", name: "Big", orders: {create: $orders}}) { id } }',
        {"orders": orders},
    )
    big = created["createCustomer"]["id"]
    page = member_client.get(url(shop, "data-row", "Customer", big)).content.decode()
    assert re.search(r'<textarea[^>]*name="orders"[^>]*disabled', page)
    assert "too many to edit here" in page
    # A form sent anyway with a shorter list changes the name and leaves the orders alone.
    response = member_client.post(
        url(shop, "data-row", "Customer", big),
        {"email": "big@x.example", "name": "Bigger", "tier": "BASIC", "orders": ""},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    count = api.call(
        "query($id: ID!) { ordersConnection(where: {customer: {id: $id}}) "
        "{ aggregate { count } } }",
        {"id": big},
    )
    assert count["ordersConnection"]["aggregate"]["count"] == MAX_EDITABLE_IDS + 1
    assert "Bigger" in listed(member_client, shop, f"q={big}")
