"""Starter datamodels: each deploys cleanly to a sandbox region (the runtime as a real process),
answers its example query, takes the nested writes its comments suggest, and keeps services made
from the same starter apart; its schema is the one Prisma's own generator makes; an installed
project carries the files.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jwt
import pytest
from graphql import build_schema, parse, validate
from psycopg import sql

from servers.management_api import ManagementClient
from servers.starters import STARTERS, Starter, UnknownStarter, get_starter
from tests.runtime.conftest import Database, KeyPair, Runtime, management_token
from tests.runtime.opencrud.schema_diff import schema_differences
from tests.runtime.opencrud.test_schema_parity import (  # noqa: F401 - a fixture
    node_modules,
    our_schema,
    prisma_schema,
)

ROOT = Path(__file__).resolve().parents[2]
KEYS = [starter.key for starter in STARTERS]
# The tables a deploy creates: one per type, plus a link table per many-to-many relation
# (named as the datamodels' comments say).
TABLES = {
    "blank": {"Item"},
    "blog": {"User", "Post", "Comment", "Tag", "_PostToTag"},
    "shop": {"Customer", "Category", "Product", "Order", "OrderItem", "_CategoryToProduct"},
}


def test_the_picker_offers_blank_blog_and_shop_in_that_order() -> None:
    assert KEYS == ["blank", "blog", "shop"]
    for starter in STARTERS:
        assert starter.title and "\n" not in starter.title
        assert starter.description and "\n" not in starter.description
        assert starter.datamodel.lstrip().startswith("#")  # commented for a newcomer
        assert get_starter(starter.key) is starter


@pytest.mark.parametrize("key", ["", "Blog", "blog ", "../blog", "blog.prisma", "x" * 10_000])
def test_an_unknown_starter_is_refused_with_the_choices(key: str) -> None:
    with pytest.raises(UnknownStarter, match="choose one of blank, blog, shop"):
        get_starter(key)


@pytest.mark.parametrize("key", [None, 3, ["blog"]])
def test_a_key_of_the_wrong_type_is_refused_the_same_way(key: Any) -> None:
    with pytest.raises(UnknownStarter):
        get_starter(key)


@pytest.mark.parametrize("starter", STARTERS, ids=KEYS)
def test_the_example_query_fits_a_curl_command_unescaped(starter: Starter) -> None:
    body = json.dumps({"query": starter.example_query})
    assert "'" not in body and "\\" not in body
    assert shlex.split(f"curl -d '{body}'") == ["curl", "-d", body]


# The runtime as a real process: a sandbox region, driven by the console's management client.


@pytest.fixture
def client(region: Runtime, platform_keys: KeyPair) -> ManagementClient:
    token = management_token(platform_keys.private_pem, algorithm="RS256", expires_in=300)
    return ManagementClient(region.url, token=token, timeout=60)


class Service:
    """A sandbox service deployed from a starter as the console deploys one (with a secret, so
    its API answers only its service token), and its data endpoint."""

    def __init__(
        self,
        region: Runtime,
        client: ManagementClient,
        starter: Starter,
        workspace: str | None = None,
    ) -> None:
        self.workspace = workspace or f"ws{secrets.token_hex(4)}"
        self.name = f"{starter.key}{secrets.token_hex(2)}"
        self.project = f"{self.workspace}~{self.name}"
        self.schema = f"{self.project}$dev"
        self.region = region
        self.secret = secrets.token_urlsafe(32)
        client.add_project(self.project, "dev", secrets=[self.secret])
        self.deployed = client.deploy(self.project, "dev", starter.datamodel, secrets=[self.secret])
        self.token = jwt.encode(
            {"data": {"service": f"{self.name}@dev", "roles": ["admin"]}}, self.secret, "HS256"
        )

    def request(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        path = f"/{self.workspace}/{self.name}/dev"
        payload = {"query": query, "variables": variables}
        response = self.region.post(path, payload, token=token or self.token)
        assert response.status == 200, response.body
        return response.body

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.request(query, variables)
        assert "errors" not in answer, answer
        return answer["data"]


def suggested_mutation(starter: Starter) -> str:
    """The mutation under "Try it" in the starter's header comment, as a reader would copy it."""
    block = re.search(r"^# Try it.*\n((?:#   .*\n)+)", starter.datamodel, re.MULTILINE)
    assert block, f"{starter.key} suggests no mutation"
    return "\n".join(line.removeprefix("#   ") for line in block[1].splitlines())


@pytest.mark.multiprocess
@pytest.mark.parametrize("starter", STARTERS, ids=KEYS)
def test_each_starter_deploys_cleanly_and_answers_its_example(
    region: Runtime, client: ManagementClient, database: Database, starter: Starter
) -> None:
    service = Service(region, client, starter)
    assert service.deployed["errors"] == []
    assert service.deployed["warnings"] == []
    assert service.deployed["migration"]["revision"] == 2
    status = client.migration_status(service.project, "dev")
    assert (status["revision"], status["status"], status["errors"]) == (2, "SUCCESS", [])
    assert database.tables(service.schema) == TABLES[starter.key]
    assert list(service.data(starter.example_query).values()) == [[]]
    # Deploying the same starter again changes nothing.
    again = client.deploy(service.project, "dev", starter.datamodel, secrets=[service.secret])
    assert again == {"errors": [], "warnings": [], "migration": None, "steps": []}


@pytest.mark.multiprocess
def test_blank_creates_an_item_as_its_comment_suggests(
    region: Runtime, client: ManagementClient
) -> None:
    blank = Service(region, client, get_starter("blank"))
    created = blank.data(suggested_mutation(get_starter("blank")))["createItem"]
    assert (created["name"], created["done"]) == ("My first item", False)
    assert blank.data(get_starter("blank").example_query) == {"items": [created]}


@pytest.mark.multiprocess
def test_blog_creates_a_user_with_a_tagged_post_in_one_mutation(
    region: Runtime, client: ManagementClient
) -> None:
    blog = Service(region, client, get_starter("blog"))
    created = blog.data(suggested_mutation(get_starter("blog")))["createUser"]
    assert created["posts"] == [{"title": "Hello", "tags": [{"name": "intro"}]}]
    post = blog.data("{ posts { id } }")["posts"][0]
    blog.data(
        """mutation($post: ID!, $user: ID!) {
          createComment(data: {text: "Welcome!", post: {connect: {id: $post}},
                               author: {connect: {id: $user}}}) { id }
        }""",
        {"post": post["id"], "user": created["id"]},
    )
    assert blog.data(get_starter("blog").example_query) == {
        "posts": [
            {"id": post["id"], "title": "Hello", "author": {"name": "Ada"},
             "tags": [{"name": "intro"}]},
        ]
    }  # fmt: skip
    user = blog.data('{ user(where: {email: "ada@example.com"}) { role comments { text } } }')
    assert user == {"user": {"role": "USER", "comments": [{"text": "Welcome!"}]}}
    # As the datamodel says: deleting a post deletes its comments.
    blog.data("mutation($id: ID!) { deletePost(where: {id: $id}) { id } }", {"id": post["id"]})
    assert blog.data("{ comments { id } tags { name posts { id } } }") == {
        "comments": [],
        "tags": [{"name": "intro", "posts": []}],
    }


@pytest.mark.multiprocess
def test_shop_places_an_order_with_its_lines_in_one_mutation(
    region: Runtime, client: ManagementClient
) -> None:
    shop = Service(region, client, get_starter("shop"))
    shop.data(
        """mutation($address: Json) {
          createCustomer(data: {email: "ada@example.com", name: "Ada", address: $address}) { id }
        }""",
        {"address": {"street": "1 Analytical Way", "city": "London"}},
    )
    product = shop.data(
        """mutation($attributes: Json) {
          createProduct(data: {sku: "MUG-1", name: "Mug", price: 9.5, stock: 12,
            attributes: $attributes,
            categories: {create: [{name: "Kitchen"}, {name: "Gifts"}]}}) {
            name price stock attributes categories(orderBy: name_ASC) { name }
          }
        }""",
        {"attributes": {"colour": "blue", "ml": 350}},
    )["createProduct"]
    assert product == {
        "name": "Mug",
        "price": 9.5,
        "stock": 12,
        "attributes": {"colour": "blue", "ml": 350},
        "categories": [{"name": "Gifts"}, {"name": "Kitchen"}],
    }
    order = shop.data(suggested_mutation(get_starter("shop")))["createOrder"]
    assert order["status"] == "PENDING"
    assert order["items"] == [{"quantity": 2, "product": {"name": "Mug"}}]
    customer = shop.data(
        '{ customer(where: {email: "ada@example.com"}) { address orders { items { unitPrice } } } }'
    )["customer"]
    assert customer["address"] == {"street": "1 Analytical Way", "city": "London"}
    assert customer["orders"] == [{"items": [{"unitPrice": 9.5}]}]
    listed = shop.data(get_starter("shop").example_query)["products"]
    assert [(p["name"], p["price"], p["stock"]) for p in listed] == [("Mug", 9.5, 12)]
    # As the datamodel says: deleting an order deletes its lines, and nothing else.
    shop.data("mutation($id: ID!) { deleteOrder(where: {id: $id}) { id } }", {"id": order["id"]})
    assert shop.data("{ orderItems { id } products { sku } customers { email } }") == {
        "orderItems": [],
        "products": [{"sku": "MUG-1"}],
        "customers": [{"email": "ada@example.com"}],
    }


# One write per starter, the same in every service; `$mark` tells the services' rows apart.
SEED = {
    "blank": "mutation($mark: String!) { createItem(data: {name: $mark}) { id } }",
    "blog": """mutation($mark: String!) {
      createUser(data: {email: "same@example.com", name: $mark,
        posts: {create: [{title: $mark, tags: {create: [{name: $mark}]}}]}}) { id }
    }""",
    "shop": """mutation($mark: String!) {
      createProduct(data: {sku: "SAME-1", name: $mark, price: 1.5,
        categories: {create: [{name: $mark}]}}) { id }
    }""",
}
# Where each seed's mark lands, to read back from PostgreSQL.
MARKED = {"blank": "Item", "blog": "User", "shop": "Product"}


@pytest.mark.multiprocess
@pytest.mark.parametrize("starter", STARTERS, ids=KEYS)
def test_services_from_the_same_starter_see_only_their_own_rows(
    region: Runtime, client: ManagementClient, database: Database, starter: Starter
) -> None:
    first = Service(region, client, starter)
    # Two services of one workspace, and one of another.
    services = [first, Service(region, client, starter, first.workspace)]
    services.append(Service(region, client, starter))
    for service in services:
        # The same unique values in both services: each has its own tables and indexes.
        service.data(SEED[starter.key], {"mark": service.project})
    for service in services:
        answer = json.dumps(service.data(starter.example_query))
        assert [other.project in answer for other in services] == [
            other is service for other in services
        ]
        with database.connect() as conn:
            names = conn.execute(
                sql.SQL("SELECT name FROM {}.{}").format(
                    sql.Identifier(service.schema), sql.Identifier(MARKED[starter.key])
                )
            ).fetchall()
        assert names == [(service.project,)]
        for other in services:
            if other is not service:
                refused = service.request(starter.example_query, token=other.token)
                assert [error["code"] for error in refused["errors"]] == [3015]


# Prisma's own generator (node, the real prisma1@1.34.12 packages) as the oracle.


@pytest.mark.node
@pytest.mark.parametrize("starter", STARTERS, ids=KEYS)
def test_the_schema_matches_prismas_generator_and_the_example_is_valid_there(
    node_modules: Path,  # noqa: F811
    tmp_path: Path,
    starter: Starter,
) -> None:
    datamodel = tmp_path / f"{starter.key}.prisma"
    datamodel.write_text(starter.datamodel)
    theirs = prisma_schema(node_modules, datamodel)
    assert schema_differences(our_schema(datamodel, node_interface=False), theirs) == []
    assert validate(build_schema(theirs), parse(starter.example_query)) == []
    assert validate(build_schema(theirs), parse(suggested_mutation(starter))) == []


# Packaging: a wheel built from this checkout, imported with nothing else on the path.


@pytest.mark.multiprocess
def test_an_installed_project_has_the_starter_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    for package in ("cloud", "accounts", "servers", "compat", "runtime"):
        subprocess.run(
            ["cp", "-r", str(ROOT / package), str(source / package)], check=True, timeout=60
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(tmp_path / "dist"), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("refract-*.whl")
    installed = tmp_path / "installed"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(installed)
    # -S: no site-packages, so neither the editable checkout nor anything else can answer.
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "import servers.starters as s;"
        "print(json.dumps({'file': s.__file__,"
        " 'starters': {x.key: x.datamodel for x in s.STARTERS}}))"
    )
    shown = subprocess.run(
        [sys.executable, "-S", "-c", script, str(installed)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    loaded = json.loads(shown.stdout)
    assert loaded["file"].startswith(str(installed))
    assert loaded["starters"] == {
        key: (ROOT / "servers" / "starters" / f"{key}.prisma").read_text() for key in KEYS
    }
