"""A mutation's notification travels with its COMMIT (one round trip), escaped by the connection,
and still leaves only when the transaction commits."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from runtime.opencrud.executor import Answer, execute
from runtime.subscriptions.events import EventSink, Reassembler
from tests.runtime.opencrud.conftest import Service, listen, sink_for

DATAMODEL = """
type Note {
  id: ID! @id
  text: String!
  key: String! @unique
}
"""

# Quotes, a percent sign (the driver binds with `%`), a backslash, non-ASCII and a
# placeholder-looking text: each must reach the listener as it was written.
AWKWARD = 'it\'s 100% \\ "quoted" é %s $1 ; COMMIT; --'


def run(service: Service, sink: EventSink, query: str, variables: dict[str, Any]) -> Answer:
    payload = {"query": query, "variables": variables}
    answer = execute(service.api, service.schema_name, payload, service.conn, "t:1", sink=sink)
    service.conn.commit()
    return answer


def arrived(conn: psycopg.Connection) -> dict[str, list[dict[str, Any]]]:
    """The documents that arrived so far, by channel."""
    reassembler = Reassembler()
    documents: dict[str, list[dict[str, Any]]] = {}
    for note in conn.notifies(timeout=0.5, stop_after=None):
        document = reassembler.add(note.payload)
        if document is not None:
            documents.setdefault(note.channel, []).append(document)
    return documents


def received(conn: psycopg.Connection, channel: str) -> list[dict[str, Any]]:
    """The documents that arrived on `channel` (the only one listened to) so far."""
    by_channel = arrived(conn)
    assert set(by_channel) <= {channel}, by_channel
    return by_channel.get(channel, [])


def test_publishing_costs_no_round_trip_of_its_own(
    service: Service, listener: psycopg.Connection
) -> None:
    sink = sink_for(service, "notes~a$dev")
    listen(listener, sink)
    create = "mutation($t: String!, $k: String!) { createNote(data: {text: $t, key: $k}) { id } }"
    before = service.statements()
    service.data(create, {"t": "quiet", "k": "k0"})  # no sink: publishes nothing
    unpublished = service.statements() - before
    before = service.statements()
    answer = run(service, sink, create, {"t": AWKWARD, "k": "k1"})
    published = service.statements() - before
    assert published == unpublished  # BEGIN, the writes, then the notification with COMMIT
    created = json.loads(answer.body)["data"]["createNote"]["id"]
    [document] = received(listener, sink.channel)
    assert document["p"] == "notes~a$dev"
    assert document["e"] == [{"k": "CREATED", "m": "Note", "id": created}]
    # An update carries the previous values: the awkward text, escaped on the way.
    update = 'mutation($t: String!) { updateNote(where: {key: "k1"}, data: {text: $t}) { text } }'
    answer = run(service, sink, update, {"t": "plain"})
    assert json.loads(answer.body)["data"]["updateNote"]["text"] == "plain"
    [document] = received(listener, sink.channel)
    [event] = document["e"]
    assert (event["k"], event["f"]) == ("UPDATED", ["text"])
    assert event["pv"]["text"] == AWKWARD


def test_a_failed_mutation_publishes_nothing_and_the_next_one_does(
    service: Service, listener: psycopg.Connection
) -> None:
    sink = sink_for(service, "notes~b$dev")
    other = sink_for(service, "notes~c$dev")
    listen(listener, sink)
    listen(listener, other)
    create = 'mutation($k: String!) { createNote(data: {text: "x", key: $k}) { id } }'
    run(service, sink, create, {"k": "dup"})
    assert len(arrived(listener)[sink.channel]) == 1
    failed = run(service, sink, create, {"k": "dup"})  # a unique violation: rolled back
    assert json.loads(failed.body)["errors"][0]["code"] == 3010
    assert arrived(listener) == {}
    # Two root fields, one failing: the other's event leaves with the COMMIT, on its own channel.
    both = (
        'mutation { a: createNote(data: {text: "a", key: "dup"}) { id } '
        'b: createNote(data: {text: "b", key: "fresh"}) { id } }'
    )
    answer = json.loads(run(service, other, both, {}).body)
    assert answer["data"] is None  # a failed non-null root field nulls `data`, as in Prisma
    assert [e["path"] for e in answer["errors"]] == [["a"]]
    [(fresh,)] = [(i,) for i, key in service.table_rows("Note", "id", "key") if key == "fresh"]
    by_channel = arrived(listener)
    assert sink.channel not in by_channel
    [document] = by_channel[other.channel]
    assert document["e"] == [{"k": "CREATED", "m": "Note", "id": fresh}]
    assert service.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_a_batch_of_chunks_commits_in_the_same_round_trip(
    service: Service, listener: psycopg.Connection
) -> None:
    """Events past one notification's size go as an array parameter, bound as a literal."""
    sink = sink_for(service, "notes~d$dev")
    listen(listener, sink)
    long_text = AWKWARD + "x" * 20_000
    run(
        service,
        sink,
        'mutation($t: String!) { createNote(data: {text: $t, key: "long"}) { id } }',
        {"t": long_text},
    )
    received(listener, sink.channel)
    run(
        service,
        sink,
        'mutation { deleteNote(where: {key: "long"}) { id } }',
        {},
    )
    [document] = received(listener, sink.channel)
    [event] = document["e"]
    assert event["k"] == "DELETED" and event["pv"]["text"] == long_text
    assert ("long",) not in service.table_rows("Note", "key")


def test_a_channel_no_listener_lists_is_not_notified(
    service: Service, listener: psycopg.Connection
) -> None:
    """A notifying commit takes a lock of the whole cluster, so a mutation notifies only a
    channel that a runtime's listener has listed in the server's registry. A session that
    LISTENs without listing it hears nothing, in one notification or in chunks."""
    sink = sink_for(service, "notes~e$dev")
    listen(listener, sink, listed=False)
    create = "mutation($t: String!, $k: String!) { createNote(data: {text: $t, key: $k}) { id } }"
    delete = "mutation($k: String!) { deleteNote(where: {key: $k}) { id } }"
    run(service, sink, create, {"t": "x" * 20_000, "k": "e1"})
    run(service, sink, delete, {"k": "e1"})  # its previous values need several chunks
    assert arrived(listener) == {}
    # A listener lists the channel: from its row on, every mutation notifies, chunks too.
    with psycopg.connect(service.database.conninfo(), autocommit=True) as runtime:
        listen(runtime, sink)
        run(service, sink, create, {"t": "y" * 20_000, "k": "e2"})
        run(service, sink, delete, {"k": "e2"})
        documents = received(listener, sink.channel)
        assert [[e["k"] for e in d["e"]] for d in documents] == [["CREATED"], ["DELETED"]]
        assert documents[1]["e"][0]["pv"]["text"] == "y" * 20_000
        # Its row removed (the last subscriber stopped), the channel is quiet again.
        runtime.execute('DELETE FROM management."Listener" WHERE "backend" = pg_backend_pid()')
    run(service, sink, create, {"t": "z", "k": "e3"})
    assert arrived(listener) == {}
    assert [key for (key,) in service.table_rows("Note", "key") if key.startswith("e")] == ["e3"]
