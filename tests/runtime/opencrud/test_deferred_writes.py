"""On the event loop, an INSERT whose row the request made rides with the statement after it
(`steps.Sql.assumed`): a create answered with its id is one round trip, BEGIN to COMMIT. Its
failure surfaces at that later statement and must still be the field's error, as on the thread
path, undoing exactly what it undid there."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from runtime.names import schema_sql
from runtime.opencrud.executor import plan
from runtime.opencrud.steps import BEGIN, COMMIT, Result, Sql, Steps, drive_async
from runtime.subscriptions.events import EventSink, Reassembler
from runtime.wire import LoopConnection
from tests.runtime.conftest import run_async
from tests.runtime.opencrud.conftest import Service, listen, sink_for

DATAMODEL = """
type User {
  id: ID! @id
  email: String! @unique
  name: String
  tags: [String] @scalarList(strategy: RELATION)
  posts: [Post!]!
}
type Post {
  id: ID! @id
  slug: String! @unique
  author: User! @relation(link: INLINE)
}
"""
CREATE = "mutation($e: String!) { createUser(data: {email: $e}) { id } }"


class CountingConnection(LoopConnection):
    """A loop connection that counts its round trips."""

    round_trips = 0

    async def _exchange(self) -> Any:
        self.round_trips += 1
        return await super()._exchange()

    async def _pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.round_trips += 1
        return await super()._pipeline(*args, **kwargs)


def on_loop(service: Service, payload: Any, sink: EventSink | None = None) -> tuple[Any, int]:
    """The answer of a request driven on a fresh loop connection, and its round trips; the
    connection must be left idle (no transaction open, failed or not)."""

    async def body() -> tuple[Any, int]:
        conn = CountingConnection((await LoopConnection.connect(service.database.conninfo())).conn)
        try:
            steps = plan(service.api, payload, "local:loop", sink=sink)
            assert steps is not None
            _, answer = await drive_async(steps, conn, schema_sql(service.schema_name))
            assert conn.idle, conn.transaction_status
            return json.loads(answer), conn.round_trips
        finally:
            await conn.close()

    return run_async(body())


def without_request_ids(answer: Any) -> Any:
    for error in answer.get("errors", ()):
        error.pop("requestId", None)
    return answer


def test_a_create_answered_with_its_id_is_one_round_trip(
    service: Service, listener: psycopg.Connection
) -> None:
    sink = sink_for(service, "u$dev")
    listen(listener, sink)
    answer, trips = on_loop(service, {"query": CREATE, "variables": {"e": "one@x.io"}}, sink)
    assert trips == 1  # BEGIN, INSERT, the notification and COMMIT in one pipeline
    created = answer["data"]["createUser"]["id"]
    assert service.table_rows("User", "id", "email") == [(created, "one@x.io")]
    reassembler = Reassembler()
    [document] = [reassembler.add(n.payload) for n in listener.notifies(timeout=1, stop_after=1)]
    assert document == {"p": "u$dev", "e": [{"k": "CREATED", "m": "User", "id": created}]}
    # Without subscribers' events: BEGIN, INSERT and COMMIT, one round trip all the same.
    _, trips = on_loop(service, {"query": CREATE, "variables": {"e": "two@x.io"}})
    assert trips == 1


def test_a_failed_insert_is_the_fields_error_as_on_the_thread_path(service: Service) -> None:
    on_loop(service, {"query": CREATE, "variables": {"e": "taken@x.io"}})
    before = service.table_rows("User", "email")
    loop, _ = on_loop(service, {"query": CREATE, "variables": {"e": "taken@x.io"}})
    thread = service.query(CREATE, {"e": "taken@x.io"})
    assert loop["errors"][0]["code"] == 3010
    assert without_request_ids(loop) == without_request_ids(thread)
    assert service.table_rows("User", "email") == before


@pytest.mark.parametrize(
    "fields",
    [
        # The failing INSERT meets its savepoint's release; the next field still commits.
        ('a: createUser(data: {email: "dup@x.io"}) { id }',
         'b: createUser(data: {email: "a@x.io"}) { id }'),
        # The failing INSERT is the last field's: it meets the release, then COMMIT follows.
        ('a: createUser(data: {email: "b@x.io"}) { id }',
         'b: createUser(data: {email: "dup@x.io"}) { id }'),
        # A nested create's failure (a taken slug) undoes its parent's row too.
        ('a: createUser(data: {email: "c@x.io", posts: {create: {slug: "taken"}}}) { id }',),
        # The INSERT is followed by its scalar list, then by the read of the answer.
        ('a: createUser(data: {email: "dup@x.io", tags: {set: ["t"]}}) { email tags }',),
        ('a: createUser(data: {email: "d@x.io", tags: {set: ["t"]}}) { email tags }',),
    ],
)  # fmt: skip
def test_failures_and_writes_match_the_thread_path(service: Service, fields: tuple[str]) -> None:
    """Each mutation runs on the loop and on the thread path against the same rows: the answers
    (ids aside) and what each left in the tables must match."""
    document = "mutation { " + " ".join(fields) + " }"

    def reset() -> None:
        for table in ("Post", "User_tags", "User"):
            service.sql(f'DELETE FROM "{service.schema_name}"."{table}"')  # noqa: S608
        service.data('mutation { createUser(data: {email: "dup@x.io"}) { id } }')
        service.data(
            'mutation { createUser(data: {email: "p@x.io", posts: {create: {slug: "taken"}}}) '
            "{ id } }"
        )

    def tables() -> list[Any]:
        users = sorted(e for (e,) in service.table_rows("User", "email"))
        tags = sorted(v for (v,) in service.table_rows("User_tags", "value"))
        return [users, tags, sorted(s for (s,) in service.table_rows("Post", "slug"))]

    def comparable(answer: dict[str, Any]) -> dict[str, Any]:
        data = answer.get("data") or {}
        for value in data.values():
            if isinstance(value, dict) and "id" in value:
                value["id"] = "<id>"
        return without_request_ids(answer)

    reset()
    loop, _ = on_loop(service, {"query": document})
    loop_tables = tables()
    reset()
    thread = service.query(document)
    assert comparable(loop) == comparable(thread)
    assert loop_tables == tables()


def test_a_deferred_statements_failure_is_thrown_in_at_the_next_one(service: Service) -> None:
    """The driver's contract (`steps.Sql.assumed`), with statements of its own."""
    table = f'"{service.schema_name}"."User"'
    insert = f"INSERT INTO {table} (id, email) VALUES (%s, %s) RETURNING id"  # noqa: S608
    seen: list[Any] = []

    def steps(email: str) -> Steps[str]:
        yield BEGIN
        assumed = yield Sql(insert, ["deferred" + email[:3], email], assumed=Result([("x",)], 1))
        seen.append(assumed.rows)
        try:
            counted = yield Sql(f"SELECT count(*) FROM {table} WHERE email = %s", [email])  # noqa: S608
            seen.append(counted.rows)
        except psycopg.errors.UniqueViolation:
            yield Sql("ROLLBACK")
            return "refused"
        yield COMMIT
        return "done"

    def returns_early() -> Steps[str]:
        yield Sql(insert, ["early", "early@x.io"], assumed=Result([("early",)], 1))
        return "early"

    async def body() -> list[Any]:
        conn = await LoopConnection.connect(service.database.conninfo())
        try:
            first = await drive_async(steps("new@x.io"), conn, "unused")
            again = await drive_async(steps("new@x.io"), conn, "unused")
            early = await drive_async(returns_early(), conn, "unused")
            assert conn.idle
            return [first, again, early]
        finally:
            await conn.close()

    assert run_async(body()) == ["done", "refused", "early"]
    # The logic went on with the assumed rows; the count ran after the INSERT, in its pipeline.
    assert seen == [[("x",)], [(1,)], [("x",)]]
    assert ("early@x.io",) in service.table_rows("User", "email")
