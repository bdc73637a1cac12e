"""Subscriptions over websockets (`graphql-ws`), across two runtime processes on one database.

Built as Prisma's own specs are (`SubscriptionsProtocolV07Spec`, `SubscriptionFilterSpec`,
`SubscriptionsAuthSpec`): a datamodel, a subscription, writes, and the exact messages expected.
The subscriber talks to one process and every write goes through the other, so each event
travels through PostgreSQL. "No event" is checked without waiting for time to pass: events of a
service reach a subscriber in commit order, so after the writes that must not be seen, a last
write that every subscription matches must be the next event.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from websockets.exceptions import InvalidStatus

from runtime.subscriptions.events import channel_for
from tests.runtime.conftest import MANAGEMENT_SECRET, Database, Runtime, run_runtime
from tests.runtime.management.test_management_api import add, deploy
from tests.runtime.subscriptions_client import Subscriber

pytestmark = [pytest.mark.multiprocess]

DATAMODEL = """
type Post {
  id: ID! @id
  title: String!
  published: Boolean! @default(value: false)
  views: Int
  tags: [String!]! @scalarList(strategy: RELATION)
  author: User @relation(link: INLINE)
  slug: String @unique
}
type User {
  id: ID! @id
  name: String!
  posts: [Post!]!
}
"""
EVERYTHING = """subscription {
  post { mutation node { id title tags } previousValues { id title published views tags }
         updatedFields }
}"""
CREATE = """mutation($title: String!, $tags: [String!]) {
  createPost(data: {title: $title, tags: {set: $tags}}) { id }
}"""
UPDATE = """mutation($id: ID!, $data: PostUpdateInput!) {
  updatePost(where: {id: $id}, data: $data) { id }
}"""
DELETE = "mutation($id: ID!) { deletePost(where: {id: $id}) { id } }"


@pytest.fixture(scope="module")
def pair(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two runtime processes on the same database: subscribers on `a`, writes through `b`."""
    config = {
        "managementApiSecret": MANAGEMENT_SECRET,
        "databases": {"default": database.prisma_config()},
    }
    logs = tmp_path_factory.mktemp("subscriptions")
    with run_runtime(config, logs) as a, run_runtime(config, logs) as b:
        yield a, b


@pytest.fixture
def service(pair: tuple[Runtime, Runtime], token: str) -> str:
    name = f"sub{secrets.token_hex(4)}"
    add(pair[0], token, name)
    deploy(pair[0], token, name, DATAMODEL)
    return f"/{name}/dev"


def write(runtime: Runtime, path: str, query: str, token: str | None = None, **variables: Any):
    response = runtime.post(path, {"query": query, "variables": variables}, token=token)
    assert response.status == 200, response.body
    assert "errors" not in response.body, response.body
    return response.body["data"]


def create(runtime: Runtime, path: str, title: str, tags: list[str] | None = None) -> str:
    return write(runtime, path, CREATE, title=title, tags=tags or [])["createPost"]["id"]


def test_created_updated_and_deleted_reach_a_subscriber_of_another_process(
    pair: tuple[Runtime, Runtime], service: str
) -> None:
    a, b = pair
    with Subscriber(a.url + service) as sub:
        assert sub.init() == {"type": "connection_ack"}
        sub.start("1", EVERYTHING)
        post = create(b, service, "first", ["x", "y"])
        assert sub.data() == (
            "1",
            {
                "post": {
                    "mutation": "CREATED",
                    "node": {"id": post, "title": "first", "tags": ["x", "y"]},
                    "previousValues": None,
                    "updatedFields": None,
                }
            },
        )
        write(b, service, UPDATE, id=post, data={"title": "second", "views": 3})
        assert sub.data() == (
            "1",
            {
                "post": {
                    "mutation": "UPDATED",
                    "node": {"id": post, "title": "second", "tags": ["x", "y"]},
                    "previousValues": {
                        "id": post,
                        "title": "first",
                        "published": False,
                        "views": None,
                        "tags": ["x", "y"],
                    },
                    "updatedFields": ["title", "views"],
                }
            },
        )
        write(b, service, DELETE, id=post)
        assert sub.data() == (
            "1",
            {
                "post": {
                    "mutation": "DELETED",
                    "node": None,
                    "previousValues": {
                        "id": post,
                        "title": "second",
                        "published": False,
                        "views": 3,
                        "tags": ["x", "y"],
                    },
                    "updatedFields": None,
                }
            },
        )


def test_filters_select_the_events_each_subscription_asked_for(
    pair: tuple[Runtime, Runtime], service: str
) -> None:
    a, b = pair
    kept = create(b, service, "kept")
    with Subscriber(a.url + service) as sub:
        sub.init()
        sub.start(
            "created-x",
            """subscription($text: String!) {
              post(where: {mutation_in: [CREATED], node: {title_contains: $text}}) {
                mutation node { title } } }""",
            {"text": "x"},
        )
        sub.start(
            "title-updates",
            """subscription { post(where: {mutation_in: [UPDATED],
                 AND: [{updatedFields_contains: "title"}, {node: {title_starts_with: "new"}}]}) {
               mutation node { title } previousValues { title } updatedFields } }""",
        )
        sub.start(
            "deletes",
            """subscription { alias: post(where: {mutation_in: DELETED,
                 node: {title: "never matches: deletes ignore node filters"}}) {
               mutation previousValues { title } } }""",
        )
        create(b, service, "no match")
        create(b, service, "with an x")
        write(b, service, UPDATE, id=kept, data={"views": 1})  # not the title
        write(b, service, UPDATE, id=kept, data={"title": "renamed"})  # not "new..."
        write(b, service, UPDATE, id=kept, data={"title": "new title"})
        write(b, service, DELETE, id=kept)
        received = [sub.data() for _ in range(3)]
        assert received == [
            ("created-x", {"post": {"mutation": "CREATED", "node": {"title": "with an x"}}}),
            (
                "title-updates",
                {
                    "post": {
                        "mutation": "UPDATED",
                        "node": {"title": "new title"},
                        "previousValues": {"title": "renamed"},
                        "updatedFields": ["title"],
                    }
                },
            ),
            (
                "deletes",
                {"alias": {"mutation": "DELETED", "previousValues": {"title": "new title"}}},
            ),
        ]
        # Nothing else was on its way: the next event is a create that matches.
        create(b, service, "x marks the end")
        assert sub.data() == (
            "created-x",
            {"post": {"mutation": "CREATED", "node": {"title": "x marks the end"}}},
        )


def test_nested_writes_publish_and_many_writes_do_not(
    pair: tuple[Runtime, Runtime], service: str
) -> None:
    """Nested creates, updates and deletes publish events; `updateMany` and `deleteMany`
    publish none, as in Prisma (`ManyNodesResult` carries no node)."""
    a, b = pair
    with Subscriber(a.url + service) as sub:
        sub.init()
        sub.start("1", "subscription { post { mutation node { title } previousValues { title } } }")
        user = write(
            b,
            service,
            """mutation { createUser(data: {name: "ann",
              posts: {create: [{title: "one"}, {title: "two"}]}}) { id posts { id title } } }""",
        )["createUser"]
        first, second = (p["id"] for p in user["posts"])
        assert [sub.data()[1]["post"] for _ in range(2)] == [
            {"mutation": "CREATED", "node": {"title": "one"}, "previousValues": None},
            {"mutation": "CREATED", "node": {"title": "two"}, "previousValues": None},
        ]
        write(
            b,
            service,
            """mutation($user: ID!, $first: ID!, $second: ID!) {
              updateUser(where: {id: $user}, data: {posts: {
                update: [{where: {id: $first}, data: {title: "uno"}}],
                delete: [{id: $second}]}}) { id } }""",
            user=user["id"],
            first=first,
            second=second,
        )
        assert [sub.data()[1]["post"] for _ in range(2)] == [
            {"mutation": "UPDATED", "node": {"title": "uno"}, "previousValues": {"title": "one"}},
            {"mutation": "DELETED", "node": None, "previousValues": {"title": "two"}},
        ]
        write(b, service, "mutation { updateManyPosts(data: {views: 9}) { count } }")
        write(b, service, 'mutation { deleteManyPosts(where: {title: "uno"}) { count } }')
        create(b, service, "last")
        assert sub.data()[1]["post"] == {
            "mutation": "CREATED",
            "node": {"title": "last"},
            "previousValues": None,
        }


def test_a_rolled_back_mutation_publishes_nothing(
    pair: tuple[Runtime, Runtime], service: str
) -> None:
    a, b = pair
    write(b, service, 'mutation { createPost(data: {title: "taken", slug: "s"}) { id } }')
    with Subscriber(a.url + service) as sub:
        sub.init()
        sub.start("1", "subscription { post { mutation node { title } } }")
        failed = b.post(
            service,
            {"query": 'mutation { createPost(data: {title: "dup", slug: "s"}) { id } }'},
        )
        assert failed.body["errors"][0]["code"] == 3010
        # Two root fields: the first commits, the second (a duplicate) is undone alone (the
        # data is null all the same: both fields are non-null).
        half = b.post(
            service,
            {
                "query": """mutation { a: createPost(data: {title: "kept"}) { id }
                  b: createPost(data: {title: "dup", slug: "s"}) { id } }"""
            },
        )
        assert [e["code"] for e in half.body["errors"]] == [3010]
        assert sub.data()[1] == {"post": {"mutation": "CREATED", "node": {"title": "kept"}}}
        create(b, service, "after")
        assert sub.data()[1] == {"post": {"mutation": "CREATED", "node": {"title": "after"}}}


def listed(database: Database, path: str) -> list[tuple[int, str]]:
    """The registry's rows for the service at `path`: each listening session's backend pid and
    application name (empty when the session is gone)."""
    name, stage = path.strip("/").split("/")
    where = f"{database.host}:{database.port}/{database.database}"  # as the runtime names it
    channel = channel_for(where, "management", f"{name}${stage}")
    with database.connect() as conn:
        rows = conn.execute(
            'SELECT l."backend", coalesce(a."application_name", \'\') '
            'FROM management."Listener" l LEFT JOIN pg_stat_activity a ON a."pid" = l."backend" '
            'WHERE l."channel" = %s',
            [channel],
        )
        return rows.fetchall()


def until(condition: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 30
    while not (value := condition()):
        assert time.monotonic() < deadline, "still waiting"
        time.sleep(0.05)
    return value


def test_a_service_is_listed_while_it_has_subscribers_and_again_after_a_reconnect(
    pair: tuple[Runtime, Runtime], service: str, database: Database
) -> None:
    """Mutations notify only listed channels (`runtime.subscriptions.events`): the listener
    lists its channel before a subscription starts, lists it again under its new session when
    it reconnects (the dead session's row removed), and removes it with the last subscriber."""
    a, b = pair
    create(b, service, "before anybody listens")
    assert listed(database, service) == []
    with Subscriber(a.url + service) as sub:
        sub.init()
        sub.start("1", "subscription { post { node { title } } }")
        [(backend, application)] = listed(database, service)
        assert application == "refract-runtime-listen"
        with database.connect() as conn:  # as when the database restarts
            conn.execute("SELECT pg_terminate_backend(%s)", [backend])
        [(again, application)] = until(
            lambda: [row for row in listed(database, service) if row[0] != backend]
        )
        assert application == "refract-runtime-listen"
        assert listed(database, service) == [(again, application)]  # the dead row is gone
        create(b, service, "after the reconnect")
        assert sub.data() == ("1", {"post": {"node": {"title": "after the reconnect"}}})
        sub.send({"type": "stop", "id": "1"})
        sub.sync()
        until(lambda: listed(database, service) == [])
    # The writes of a service nobody listens to notify nobody: none is left waiting either.
    create(b, service, "after the last subscriber")
    with Subscriber(a.url + service) as sub:
        sub.init()
        sub.start("2", "subscription { post { node { title } } }")
        create(b, service, "for the new subscriber")
        assert sub.data() == ("2", {"post": {"node": {"title": "for the new subscriber"}}})


def test_services_with_the_same_datamodel_never_see_each_other(
    pair: tuple[Runtime, Runtime], token: str
) -> None:
    a, b = pair
    first, second = (f"iso{secrets.token_hex(4)}" for _ in range(2))
    for name in (first, second):
        add(a, token, name)
        deploy(a, token, name, DATAMODEL)
    with Subscriber(f"{a.url}/{first}/dev") as one, Subscriber(f"{a.url}/{second}/dev") as two:
        for sub in (one, two):
            sub.init()
            sub.start("1", "subscription { post { node { title } } }")
        create(b, f"/{second}/dev", "for two")
        create(b, f"/{first}/dev", "for one")
        assert one.data()[1] == {"post": {"node": {"title": "for one"}}}
        assert two.data()[1] == {"post": {"node": {"title": "for two"}}}


def test_protocol_messages_and_errors_are_prismas(
    pair: tuple[Runtime, Runtime], service: str
) -> None:
    a, _ = pair
    with Subscriber(a.url + service) as sub:
        sub.send("{}")
        assert sub.next() == {
            "id": "",
            "payload": {"message": "The message can't be parsed"},
            "type": "error",
        }
        sub.send({"type": "start", "id": "1", "payload": {"query": EVERYTHING}})
        assert sub.next() == {
            "type": "connection_error",
            "payload": {
                "message": "You have to send an init message before sending anything else."
            },
        }
        sub.send({"type": "connection_init", "payload": {}})
        acknowledged = [json.loads(sub.ws.recv(timeout=30)) for _ in range(2)]
        assert acknowledged == [{"type": "connection_ack"}, {"type": "ka"}]
        no_model = (
            "The provided query doesn't include any known model name. "
            "Please check for the latest subscriptions API."
        )
        sub.send(
            {"type": "start", "id": 7, "payload": {"query": "subscription { pokemon { id } }"}}
        )
        assert sub.next() == {"id": 7, "payload": {"message": no_model}, "type": "error"}
        sub.send({"type": "start", "id": "x", "payload": {"query": "subscription {"}})
        assert sub.next() == {
            "id": "x",
            "payload": {"message": "the GraphQL Query was not valid"},
            "type": "error",
        }
        sub.send(
            {"type": "start", "id": "y", "payload": {"query": "subscription { post { nope } }"}}
        )
        message = sub.next()
        assert message["type"] == "error" and "nope" in message["payload"]["message"]
        sub.send({"type": "stop", "id": "y"})
        assert sub.next() == {"id": "y", "type": "complete"}
        sub.send({"type": "connection_terminate"})
        with pytest.raises(Exception, match="1000"):
            sub.ws.recv(timeout=30)


def test_a_client_without_the_graphql_ws_subprotocol_is_refused(
    pair: tuple[Runtime, Runtime], service: str
) -> None:
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus, match="403"):
        connect(pair[0].url.replace("http", "ws") + service, open_timeout=30)


def test_a_protected_service_needs_its_token(pair: tuple[Runtime, Runtime], token: str) -> None:
    a, b = pair
    name = f"sec{secrets.token_hex(4)}"
    add(a, token, name)
    deploy(a, token, name, DATAMODEL, secrets=["service-secret-long-enough-for-hs256-0123"])
    path = f"/{name}/dev"
    good = jwt.encode({"data": "x"}, "service-secret-long-enough-for-hs256-0123", algorithm="HS256")
    bad = jwt.encode({"data": "x"}, "another-secret-just-as-long-for-hs256-0123", algorithm="HS256")
    with Subscriber(a.url + path) as sub:
        assert sub.init() == {
            "type": "connection_error",
            "payload": {"message": "No Authorization field was provided in payload."},
        }
        assert sub.init({"Authorization": f"Bearer {bad}"}) == {
            "type": "connection_error",
            "payload": {"message": "Authentication token is invalid."},
        }
        sub.send({"type": "start", "id": "1", "payload": {"query": EVERYTHING}})
        assert sub.next()["type"] == "connection_error"  # still not initialised
        assert sub.init({"Authorization": f"Bearer {good}"}) == {"type": "connection_ack"}
    with Subscriber(a.url + path, headers={"Authorization": f"Bearer {good}"}) as sub:
        assert sub.init() == {"type": "connection_ack"}
        sub.start("1", "subscription { post { node { title } } }")
        write(b, path, CREATE, token=good, title="secret")
        assert sub.data()[1] == {"post": {"node": {"title": "secret"}}}
