"""Services deployed with the same datamodel never meet (DESIGN.md, invariant 7).

A sandbox holds many services deployed from the same starter datamodel, and the runtime shares
what does not depend on the service (the GraphQL schema, parsed documents, compiled statements).
These tests deploy one datamodel to several services of one runtime and send each the same
documents, values in variables, on both dispatch paths (a body over 64 KB always runs in a
worker thread; a document compiled before, sent again within a second, runs on the event loop),
and check that every service answers with, and changes, only its own rows: by its answers and by
reading each service's schema in PostgreSQL directly.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.runtime.conftest import Database, Runtime, run_runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String!
  tags: [String!]! @scalarList(strategy: RELATION)
  posts: [Post!]!
  groups: [Group!]!
}
type Post {
  id: ID! @id
  title: String!
  author: User! @relation(link: INLINE)
}
type Group {
  id: ID! @id
  name: String! @unique
  members: [User!]!
}
"""
# A body over LOOP_BODY_BYTES (64 KB) always runs in a worker thread.
PAD = "x" * (70 * 1024)
DELETE = """mutation($name: String!) {
  deleteProject(input: {name: $name, stage: "dev"}) { project { name } }
}"""

CREATE = """mutation($email: String!, $name: String!, $tags: [String!], $title: String!,
  $group: String!) {
  createUser(data: {email: $email, name: $name, tags: {set: $tags},
    posts: {create: [{title: $title}]}, groups: {create: [{name: $group}]}}) { email name tags }
}"""
READS = {
    "single": """query($email: String!) {
      user(where: {email: $email}) { name tags posts { title author { email } } groups { name } }
    }""",
    "list": "{ users(orderBy: email_ASC) { email name tags } }",
    "filtered": """query($name: String!) {
      users(where: {name_contains: $name}, orderBy: email_ASC) { email }
    }""",
    "connection": """{
      usersConnection(orderBy: email_ASC) { aggregate { count } edges { node { email } } }
      postsConnection { aggregate { count } }
    }""",
    "back": """{
      posts(orderBy: title_ASC) { title author { email groups { name members { name } } } }
    }""",
    "relation_filter": """query($name: String!) {
      groups(where: {members_some: {name_contains: $name}}, orderBy: name_ASC) { name }
    }""",
}
NODE = "query($id: ID!) { node(id: $id) { id ... on User { email } ... on Post { title } } }"
MUTATIONS = [
    # (document, variables for a service) in the order they run
    (
        """mutation($email: String!, $name: String!) {
          updateUser(where: {email: $email}, data: {name: $name,
            posts: {create: [{title: $name}]}}) { name posts(orderBy: title_ASC) { title } }
        }""",
        lambda s: {"email": s.email(0), "name": s.mark("renamed")},
    ),
    (
        """mutation($email: String!, $name: String!, $tag: String!) {
          upsertUser(where: {email: $email}, create: {email: $email, name: $name},
            update: {name: $name, tags: {set: [$tag]}}) { email name tags }
        }""",
        lambda s: {"email": s.email(1), "name": s.mark("upserted"), "tag": s.mark("tag")},
    ),
    (
        """mutation($email: String!, $name: String!) {
          upsertUser(where: {email: $email}, create: {email: $email, name: $name},
            update: {name: $name}) { email name }
        }""",
        lambda s: {"email": s.email(9), "name": s.mark("new")},
    ),
    (
        """mutation($name: String!, $to: String!) {
          updateManyUsers(where: {name_contains: $name}, data: {name: $to}) { count }
        }""",
        lambda s: {"name": s.mark("new"), "to": s.mark("many")},
    ),
    (
        """mutation($email: String!, $group: String!, $title: String!) {
          updateUser(where: {email: $email}, data: {
            groups: {connect: [{name: $group}]},
            posts: {updateMany: [{where: {title_contains: $title}, data: {title: $title}}]}
          }) { email groups(orderBy: name_ASC) { name } }
        }""",
        lambda s: {"email": s.email(2), "group": s.group(0), "title": s.mark("post-2")},
    ),
    (
        """mutation($email: String!, $group: String!) {
          updateUser(where: {email: $email}, data: {groups: {disconnect: [{name: $group}]}}) {
            groups { name }
          }
        }""",
        lambda s: {"email": s.email(2), "group": s.group(2)},
    ),
    (
        """mutation($title: String!) {
          deleteManyPosts(where: {title_contains: $title}) { count }
        }""",
        lambda s: {"title": s.mark("post-3")},
    ),
    (
        """mutation($email: String!) { deleteUser(where: {email: $email}) { email } }""",
        lambda s: {"email": s.email(3)},
    ),
]


class Tenant:
    """One service and the values it writes: every value carries its name."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime = runtime
        self.name = name
        self.url = f"/{name}/dev"
        self.schema = f"{name}$dev"

    def mark(self, what: str) -> str:
        return f"{self.name}-{what}"

    def email(self, i: int) -> str:
        return f"{self.name}-{i}@example.com"

    def group(self, i: int) -> str:
        return self.mark(f"group-{i}")

    def send(self, query: str, variables: dict[str, Any] | None = None, *, pad: bool) -> Any:
        payload: dict[str, Any] = {"query": query, "variables": variables or {}}
        if pad:
            payload["extensions"] = {"pad": PAD}
        response = self.runtime.post(self.url, payload)
        assert response.status == 200, response.body
        assert "errors" not in response.body, (self.name, query, response.body)
        return response.body["data"]


def tenants_of(runtime: Runtime, token: str | None, count: int) -> list[Tenant]:
    prefix = f"iso{secrets.token_hex(3)}"
    tenants = [Tenant(runtime, f"{prefix}n{i}") for i in range(count)]
    for tenant in tenants:
        add(runtime, token, tenant.name)
        deploy(runtime, token, tenant.name, DATAMODEL)
    return tenants


def seed(tenant: Tenant, users: int = 4) -> None:
    for i in range(users):
        tenant.send(
            CREATE,
            {
                "email": tenant.email(i),
                "name": tenant.mark(f"user-{i}"),
                "tags": [tenant.mark("a"), tenant.mark("b")],
                "title": tenant.mark(f"post-{i}"),
                "group": tenant.group(i),
            },
            pad=i % 2 == 0,
        )


def assert_own(tenant: Tenant, others: list[Tenant], answer: Any) -> str:
    """The answer names only this tenant, and is the same as any other tenant's once names are
    replaced: returns that normal form."""
    text = json.dumps(answer, sort_keys=True)
    for other in others:
        if other is not tenant:
            assert other.name not in text, f"{tenant.name} was served {other.name}'s rows: {text}"
    return text.replace(tenant.name, "<service>")


def rows_of(database: Database, tenant: Tenant) -> dict[str, list[str]]:
    """Every text value stored in the service's schema, per table (read from PostgreSQL)."""
    out: dict[str, list[str]] = {}
    with database.connect() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [tenant.schema],
            )
        ]
        for table in sorted(tables):
            rows = conn.execute(
                f'SELECT row_to_json(t)::text FROM "{tenant.schema}"."{table}" t'  # noqa: S608
            ).fetchall()
            out[table] = sorted(r[0] for r in rows)
    return out


def stored_names(values: dict[str, list[str]]) -> set[str]:
    return set(re.findall(r"iso[0-9a-f]{6}n\d+", json.dumps(values)))


def test_same_datamodel_services_see_and_change_only_their_own_rows(
    runtime: Runtime, token: str, database: Database
) -> None:
    tenants = tenants_of(runtime, token, 3)
    for tenant in tenants:
        seed(tenant)

    # Every kind of root field, each document sent to every service in turn: first in a
    # worker thread (padded), then twice more (the event loop, once the plan is cached).
    for kind, query in READS.items():
        for pad in (True, False, False):
            normal = set()
            for tenant in tenants:
                variables = {"email": tenant.email(1), "name": tenant.name}
                answer = tenant.send(query, variables, pad=pad)
                assert answer and all(answer.values()), (kind, answer)
                normal.add(assert_own(tenant, tenants, answer))
            assert len(normal) == 1, (kind, normal)

    # node(id:) with one service's id finds nothing in another service.
    ids = {
        t.name: t.send(
            "query($e: String!) { user(where: {email: $e}) { id } }", {"e": t.email(0)}, pad=False
        )["user"]["id"]
        for t in tenants
    }
    for tenant in tenants:
        for name, node_id in ids.items():
            for pad in (True, False):
                found = tenant.send(NODE, {"id": node_id}, pad=pad)["node"]
                if name == tenant.name:
                    assert found == {"id": node_id, "email": tenant.email(0)}
                else:
                    assert found is None, (tenant.name, name, found)

    # Mutations of every kind, services interleaved, alternating dispatch paths.
    for step, (document, variables) in enumerate(MUTATIONS):
        normal = set()
        for index, tenant in enumerate(tenants):
            answer = tenant.send(document, variables(tenant), pad=(step + index) % 2 == 0)
            normal.add(assert_own(tenant, tenants, answer))
        assert len(normal) == 1, (document, normal)

    # What each service stores: only its own values, and the same as every other's.
    stored = {t.name: rows_of(database, t) for t in tenants}
    for tenant in tenants:
        assert stored_names(stored[tenant.name]) == {tenant.name}
    shapes = {
        json.dumps(
            {
                k: sorted(re.sub(r'"c[0-9a-z]{24}"', '"<id>"', v) for v in rows)
                for k, rows in stored[t.name].items()
            },
            sort_keys=True,
        ).replace(t.name, "<service>")
        for t in tenants
    }
    assert len(shapes) == 1
    final = tenants[0].send(READS["list"], pad=False)["users"]
    assert [u["email"] for u in final] == [tenants[0].email(i) for i in (0, 1, 2, 9)]


def test_a_service_deleted_and_deployed_again_under_its_name_starts_empty(
    runtime: Runtime, token: str, database: Database
) -> None:
    tenants = tenants_of(runtime, token, 2)
    for tenant in tenants:
        seed(tenant, users=2)
    first, second = tenants
    for query in READS.values():  # compile and cache every plan for the first service
        first.send(query, {"email": first.email(0), "name": first.name}, pad=False)
        first.send(query, {"email": first.email(0), "name": first.name}, pad=False)

    runtime.management(DELETE, {"name": first.name}, token)
    # The same datamodel again, and then one with a change, under the deleted name.
    for datamodel in (
        DATAMODEL,
        DATAMODEL.replace("name: String!\n", "name: String!\n  age: Int\n", 1),
    ):
        add(runtime, token, first.name)
        deploy(runtime, token, first.name, datamodel)
        for query in READS.values():
            for pad in (False, True, False):
                answer = first.send(query, {"email": first.email(0), "name": first.name}, pad=pad)
                assert_own(first, tenants, answer)
                assert json.dumps(answer).count(first.name) == 0  # nothing stored yet
        seed(first, users=1)
        assert first.send(READS["list"], pad=False)["users"] == [
            {
                "email": first.email(0),
                "name": first.mark("user-0"),
                "tags": [first.mark("a"), first.mark("b")],
            }
        ]
        runtime.management(DELETE, {"name": first.name}, token)

    # The other service kept its rows throughout, and answers from them alone.
    users = second.send(READS["list"], pad=False)["users"]
    assert [u["email"] for u in users] == [second.email(0), second.email(1)]
    assert stored_names(rows_of(database, second)) == {second.name}


def test_statements_prepared_before_a_redeploy_with_other_column_types_are_not_reused(
    runtime: Runtime, token: str
) -> None:
    """PostgreSQL refuses a prepared statement whose result types changed; the runtime's pooled
    connections prepare statements they run often. A service deleted and deployed again under
    its name with another id type must not meet its predecessor's statements."""
    name = f"iso{secrets.token_hex(3)}prep"
    tenant = Tenant(runtime, name)
    upsert = """mutation($k: String!) {
      upsertThing(where: {key: $k}, create: {key: $k}, update: {key: $k}) { key }
    }"""
    for id_type in ("ID", "Int"):
        add(runtime, token, name)
        deploy(runtime, token, name, f"type Thing {{ id: {id_type}! @id  key: String! @unique }}")
        for i in range(12):  # past psycopg's prepare threshold on every pooled connection
            assert tenant.send(upsert, {"k": "a"}, pad=i % 4 == 0) == {"upsertThing": {"key": "a"}}
        runtime.management(DELETE, {"name": name}, token)


@pytest.fixture(scope="module")
def two_processes(
    database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    """A runtime of two processes on one port (`--workers 2`), sharing one database."""
    config = {"databases": {"default": database.prisma_config()}}
    with run_runtime(config, tmp_path_factory.mktemp("two"), ("--workers", "2")) as running:
        yield running


def test_services_stay_apart_across_two_runtime_processes(
    two_processes: Runtime, database: Database
) -> None:
    tenants = tenants_of(two_processes, None, 3)
    for tenant in tenants:
        seed(tenant, users=2)
    # Many requests spread over both processes; each process caches plans on its own.
    for _ in range(4):
        for kind, query in READS.items():
            normal = set()
            for tenant in tenants:
                answer = tenant.send(
                    query, {"email": tenant.email(1), "name": tenant.name}, pad=False
                )
                normal.add(assert_own(tenant, tenants, answer))
            assert len(normal) == 1, (kind, normal)
    for tenant in tenants:
        assert stored_names(rows_of(database, tenant)) == {tenant.name}


def test_random_interleaved_operations_land_in_their_own_service(
    runtime: Runtime, token: str, database: Database
) -> None:
    """N services, one datamodel, a fixed set of documents sent in a random order with random
    values: in the end every service holds exactly what was written to it."""
    rng = random.Random(secrets.randbits(32))
    seed_value = rng.random()
    tenants = tenants_of(runtime, token, 4)
    model: dict[str, dict[str, str]] = {t.name: {} for t in tenants}  # email -> name
    create = """mutation($email: String!, $name: String!) {
      createUser(data: {email: $email, name: $name}) { email } }"""
    rename = """mutation($email: String!, $name: String!) {
      updateUser(where: {email: $email}, data: {name: $name}) { name } }"""
    upsert = """mutation($email: String!, $name: String!) {
      upsertUser(where: {email: $email}, create: {email: $email, name: $name},
        update: {name: $name}) { name } }"""
    remove = """mutation($email: String!) { deleteManyUsers(where: {email: $email}) { count } }"""
    listing = "{ users(orderBy: email_ASC) { email name } }"
    for step in range(300):
        tenant = rng.choice(tenants)
        users = model[tenant.name]
        email = f"{tenant.name}-{rng.randrange(12)}@example.com"
        name = f"{tenant.name}-v{step}"
        pad = rng.random() < 0.2
        action = rng.choice(["create", "rename", "upsert", "remove", "list"])
        if action == "create" and email not in users:
            tenant.send(create, {"email": email, "name": name}, pad=pad)
            users[email] = name
        elif action == "rename" and email in users:
            tenant.send(rename, {"email": email, "name": name}, pad=pad)
            users[email] = name
        elif action == "upsert":
            tenant.send(upsert, {"email": email, "name": name}, pad=pad)
            users[email] = name
        elif action == "remove":
            count = tenant.send(remove, {"email": email}, pad=pad)["deleteManyUsers"]["count"]
            assert count == (1 if users.pop(email, None) else 0), (seed_value, step)
        else:
            answer = tenant.send(listing, pad=pad)["users"]
            assert answer == [{"email": e, "name": users[e]} for e in sorted(users)], seed_value
    for tenant in tenants:
        answer = tenant.send(listing, pad=False)["users"]
        expected = [{"email": e, "name": model[tenant.name][e]} for e in sorted(model[tenant.name])]
        assert answer == expected, seed_value
        assert stored_names(rows_of(database, tenant)) <= {tenant.name}


def test_inlined_values_share_plans_across_services_but_never_rows(
    runtime: Runtime, token: str, database: Database
) -> None:
    """Documents that differ only in inlined values share one hoisted plan per datamodel, and
    the same text sent to several services (the values inlined, nothing in variables) is
    answered by each from its own rows, on both dispatch paths."""
    tenants = tenants_of(runtime, token, 2)
    shared = "same-for-all@example.com"  # one value every service stores
    for tenant in tenants:
        for i in range(3):
            created = tenant.send(
                f'mutation {{ createUser(data: {{email: "{tenant.email(i)}", '
                f'name: "{tenant.mark(f"user-{i}")}"}}) {{ email name }} }}',
                pad=i == 0,
            )
            assert created == {
                "createUser": {"email": tenant.email(i), "name": tenant.mark(f"user-{i}")}
            }
        tenant.send(
            f'mutation {{ createUser(data: {{email: "{shared}", name: "{tenant.name}"}}) '
            "{ email } }",
            pad=False,
        )
    for _ in range(3):  # a worker thread first, then the event loop once the plans are cached
        for pad in (True, False, False):
            for tenant in tenants:
                for i in range(3):
                    found = tenant.send(
                        f'{{ user(where: {{email: "{tenant.email(i)}"}}) {{ name }} }}', pad=pad
                    )
                    assert found == {"user": {"name": tenant.mark(f"user-{i}")}}
                    other = tenants[1] if tenant is tenants[0] else tenants[0]
                    missing = tenant.send(
                        f'{{ user(where: {{email: "{other.email(i)}"}}) {{ name }} }}', pad=pad
                    )
                    assert missing == {"user": None}
                same_text = f'{{ user(where: {{email: "{shared}"}}) {{ name }} }}'
                assert tenant.send(same_text, pad=pad) == {"user": {"name": tenant.name}}
                listed = tenant.send(
                    '{ users(where: {email_contains: "example.com", name_not: "x"}, '
                    "orderBy: email_ASC) { email } }",
                    pad=pad,
                )["users"]
                assert [u["email"] for u in listed] == sorted(
                    [tenant.email(i) for i in range(3)] + [shared]
                )
    renamed = {
        t.name: t.send(
            f'mutation {{ updateUser(where: {{email: "{shared}"}}, '
            f'data: {{name: "{t.mark("renamed")}"}}) {{ name }} }}',
            pad=False,
        )
        for t in tenants
    }
    assert renamed == {t.name: {"updateUser": {"name": t.mark("renamed")}} for t in tenants}
    for tenant in tenants:
        assert stored_names(rows_of(database, tenant)) == {tenant.name}
