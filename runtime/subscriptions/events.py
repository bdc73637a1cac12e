"""What a mutation publishes, and how a listener reads it back.

A mutation collects its events while it writes (`Writer.events`): a node created, a node updated
(the names of the scalar fields its input set, and the node's scalar values before the update,
read inside the transaction) and a node deleted (its values before the delete). Just before
COMMIT, the events go out through `pg_notify` on the service's channel in the same transaction:
PostgreSQL delivers a notification only when its transaction commits, to every session that
listens on the channel by then, in every runtime process; a rolled-back mutation publishes
nothing.

A transaction that notifies holds a lock of the whole database cluster from its pre-commit to
the end of its commit, WAL flush included: notifying commits run one at a time (on a 2-core
machine, 8 clients inserting one row each: 9,000 commits a second without `pg_notify`, 4,000
with it). So a mutation notifies only when somebody listens: each server's management schema
holds the channels its runtime processes listen on (`"Listener"`, a row per channel and
listening session, `runtime.subscriptions.hub`), and the notifying statement runs
`pg_notify` only when its channel has a row there. A listener adds its row after its LISTEN and
before it confirms the subscription, so every mutation whose notifying statement starts after
that (every mutation sent after the subscription is confirmed) reaches it.

What Prisma publishes is followed (`SubscriptionEvents.scala`): `updateMany` and
`deleteMany` publish nothing, nor do cascading deletes; Refract also publishes nested deletes
and gives nested updates their full previous values (Prisma gives only the id there).

A notification's payload must be under 8000 bytes, and previous values can be larger (a long
text, a Json field): a request's events are one JSON document, sent in numbered chunks that the
listener puts together again (`Reassembler`). Notifications of one transaction arrive together
and in order; the chunk numbers make that an optimisation, not an assumption.

Channels are keyed by server and service (DESIGN invariant 7): the database the server's
connections reach, its management schema and the project id, hashed into a channel name (a
PostgreSQL identifier is at most 63 bytes). The payload names the project again, and the
listener checks it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from runtime.names import ident
from runtime.opencrud.model import ApiField, ApiModel
from runtime.opencrud.reads import scalar_json
from runtime.opencrud.statement import Statement, column, json_object
from runtime.opencrud.steps import Sql, Steps

# Characters of JSON (ASCII: `json.dumps` escapes the rest) per notification, with room for
# the chunk header under PostgreSQL's 8000-byte limit.
CHUNK_CHARS = 7900
# Events put together at once from chunks; a chunk whose siblings never come is dropped.
PARTIAL_EVENTS = 256

CREATED, UPDATED, DELETED = "CREATED", "UPDATED", "DELETED"


@dataclass(frozen=True)
class EventSink:
    """Where the events of a request go: its service's channel, and the server's registry of
    listened channels (`listeners_table`)."""

    channel: str
    project_id: str
    listeners: str


def listeners_table(management_schema: str) -> str:
    """The registry of the channels listened on, in the server's management schema, quoted."""
    return f'{ident(management_schema)}."Listener"'


def channel_for(database: str, management_schema: str, project_id: str) -> str:
    """The channel of one service of one server (see the module's docstring)."""
    key = "\x00".join((database, management_schema, project_id)).encode()
    return "refract_" + hashlib.sha256(key).hexdigest()[:40]


def created(model: ApiModel, node_id: Any) -> dict[str, Any]:
    return {"k": CREATED, "m": model.name, "id": node_id}


def updated(
    model: ApiModel, node_id: Any, fields: list[str], previous: dict[str, Any] | None
) -> dict[str, Any]:
    return {"k": UPDATED, "m": model.name, "id": node_id, "f": fields, "pv": previous}


def deleted(model: ApiModel, node_id: Any, previous: dict[str, Any] | None) -> dict[str, Any]:
    return {"k": DELETED, "m": model.name, "id": node_id, "pv": previous}


@cache
def previous_values_query(model: ApiModel, by: ApiField | None = None) -> str:
    """The id and the JSON of a node's scalar fields (lists included), as the API answers them:
    what `previousValues` selects from. Runs in the mutation's transaction, before the write;
    `by` is the unique field the parameter holds (the id by default)."""
    st = Statement()
    pairs = [(f.name, scalar_json(st, f, "t")) for f in model.scalar_fields]
    return (
        f"SELECT {column('t', model.id_field)}, {json_object(pairs)}::text "  # noqa: S608
        f"FROM {st.table(model)} t "
        f"WHERE {column('t', by or model.id_field)} = %s"
    )


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)  # made once, not per call
# orjson writes what the encoder above writes, ten times faster, for the values events hold
# (strings, numbers, lists and dicts of them, ids), as long as the text is ASCII (the encoder
# escapes the rest, and the chunks count ASCII characters) and holds no NaN or infinity (the
# encoder writes `NaN`, orjson `null`). Anything else it would write its own way (dates,
# subclasses, dataclasses) goes to `str` as in the encoder.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def _encode(document: dict[str, Any]) -> str:
    try:
        fast = orjson.dumps(document, default=str, option=_ORJSON_OPTIONS)
    except TypeError:  # a key that is no string, an integer past 64 bits...
        return _ENCODER.encode(document)
    if fast.isascii() and (b"null" not in fast or not _nonfinite(document)):
        return fast.decode("ascii")
    return _ENCODER.encode(document)  # the encoder's own escapes, or a float orjson made null


def _nonfinite(value: Any) -> bool:
    """Whether a float that is NaN or infinite is anywhere in `value`."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return False
    return any(_nonfinite(item) for item in value)


def notifications(sink: EventSink, events: list[dict[str, Any]]) -> list[str]:
    """The payloads that carry a request's events: `<token>:<index>:<count>:<json part>`."""
    body = _encode({"p": sink.project_id, "e": events})
    parts = [body[i : i + CHUNK_CHARS] for i in range(0, len(body), CHUNK_CHARS)]
    token = os.urandom(8).hex()
    return [f"{token}:{i}:{len(parts)}:{part}" for i, part in enumerate(parts)]


def publish(sink: EventSink, events: list[dict[str, Any]], commit: bool = False) -> Steps[bool]:
    """One statement inside the transaction, just before COMMIT; nothing without events. With
    `commit`, the COMMIT goes in the same round trip (`steps.Sql.commit`); the value says whether
    it did (False when there was nothing to publish)."""
    if not events:
        return False
    payloads = notifications(sink, events)
    one, many = notifying_statements(sink.listeners)
    if len(payloads) == 1:  # the usual case; an array parameter costs an escaping pass
        yield Sql(one, [sink.channel, payloads[0], sink.channel], commit=commit)
        return commit
    yield Sql(many, [sink.channel, payloads, sink.channel], commit=commit)
    return commit


@cache
def notifying_statements(listeners: str) -> tuple[str, str]:
    """The statements that notify one payload and several, when the channel is listened on."""
    listened = f' WHERE EXISTS (SELECT FROM {listeners.replace("%", "%%")} WHERE "channel" = %s)'
    return (
        "SELECT pg_notify(%s, %s)" + listened,
        "SELECT count(pg_notify(%s, p)) FROM unnest(%s::text[]) AS p" + listened,  # noqa: S608 - a quoted name
    )


class Reassembler:
    """Notifications back into `{"p": project id, "e": [event, ...]}` documents."""

    def __init__(self, limit: int = PARTIAL_EVENTS) -> None:
        self.limit = limit
        self.partial: OrderedDict[str, dict[int, str]] = OrderedDict()

    def add(self, payload: str) -> dict[str, Any] | None:
        try:
            token, index_text, count_text, part = payload.split(":", 3)
            index, count = int(index_text), int(count_text)
        except ValueError:
            return None
        if count == 1:
            return _document(part)
        parts = self.partial.setdefault(token, {})
        parts[index] = part
        if len(parts) < count:
            while len(self.partial) > self.limit:
                self.partial.popitem(last=False)
            return None
        del self.partial[token]
        return _document("".join(parts[i] for i in range(count)))


def _document(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None
