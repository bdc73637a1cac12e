"""The usage counter and its readings as pure functions: operation identity (inlined values,
aliases, comments), the operations cap, error detection from an answer's bytes, percentiles
from the fixed buckets, the label cap of `/metrics`, and the config's checks."""

from __future__ import annotations

import random
import re

import pytest

from runtime.config import ConfigError, parse_config
from runtime.usage import FLUSH_SECONDS, MAX_FLUSH_SECONDS, counter, flush_delay, outcome
from runtime.usage.counter import OTHER, UsageCounter, identify, normalize
from runtime.usage.metrics import authorised, bounded, service_label
from runtime.usage.report import quantile

DB = {"databases": {"default": {"connector": "postgres"}}}


class Clock:
    def __init__(self, now: float = 6000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_inlined_values_comments_and_spacing_make_one_operation():
    one = identify('{ user(where: {id: "a1", age: 3}) { id } }', None)
    two = identify('# hi\n{\n  user(where: {id: "z\\"9", age: -4.5e3}),\n { id }\n}', None)
    assert one == two
    assert one.name is None
    assert one.document == '{user(where:{id:"" age:0}){id}}'
    # Names with digits keep them; a different selection is a different operation.
    assert normalize("{ user2 { id } }") == "{user2{id}}"
    assert identify("{ user { name } }", None).key != one.key


def test_normalizing_gives_the_text_the_stored_keys_were_made_from():
    """Operation keys already stored were made when the spaces around punctuation went in
    one pass (`" ?([...]) ?"` kept through `\\1`); today's two passes give the same text."""

    def before(document: str) -> str:
        text = counter._STRING.sub('""', document[: counter.MAX_DOCUMENT_CHARS])
        text = counter._COMMENT.sub(" ", text)
        text = counter._NUMBER.sub("0", text)
        text = counter._SPACE.sub(" ", text).strip()
        return re.sub(r" ?([{}()\[\]:!=@$|.&]) ?", r"\1", text)

    pieces = [*"{}()[]:!=@$|.&", " ", "  ", ",", "\n", "a", "b1", '"s t"', "-4.5e3", "# c\n", "..."]
    rng = random.Random(16)
    documents = [
        "query Feed($n: Int = 10) @live { posts(first: $n) { ...F author { id } } }",
        "fragment F on Post { id title }\n{ a: b(c: [1, 2]) @d(if: true) }",
        '# hi\n{\n  user(where: {id: "z\\"9", age: -4.5e3}),\n { id }\n}',
    ]
    documents += [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(5000)
    ]
    for document in documents:
        assert normalize(document) == before(document), document


def test_texts_differing_only_in_values_share_a_canonical_text_that_normalises_alike():
    """A new text is identified through its canonical text (strings `""`, numbers `0`) where
    `canonical` allows it: normalising that gives exactly what normalising the text gives, so
    keys stay as they were. Generated documents mix literals with everything that could make
    normalising read a text differently: comments, block strings, adjacent literals, names and
    variables before numbers, escapes, quotes and `#` inside strings."""
    pieces = [*"{}()[]:!=@$|.&", " ", ",", "\n", "a", "b1", "$v", "_", '"s t"', '""', '"#"',
              '"a\\"b"', '"\\\\"', '"""blk"""', '"""', "-4.5e3", "0", "12", "1.5", "-0",
              "# c\n", "#", "...", '"', "x2", "$"]  # fmt: skip
    rng = random.Random(17)
    documents = [
        '{ user(where: {id: "v000000000000000000000001"}) { id name email } }',
        'mutation { createUser(data: {email: "a@b.c", name: "Bench", age: 30}) { id } }',
        '{ a(x: """b") }',
        "{ a(x: $1) }",
        '{ a(x: "#", y: 2) # "\n }',
        '{ a(x: """b""", y: "c") }',
    ]
    documents += [
        "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(20000)
    ]
    shared = 0
    for document in documents:
        text = counter.canonical(document)
        if text is not None:
            shared += 1
            assert normalize(text) == normalize(document), document
            assert counter.canonical(text) == text
    assert shared > 1500  # the shortcut is taken often enough for the check to mean something
    assert counter.canonical(documents[0]) == '{ user(where: {id: ""}) { id name email } }'
    for refused in documents[2:6]:
        assert counter.canonical(refused) is None, refused


def test_a_client_inlining_values_is_identified_once():
    usage = UsageCounter(clock=Clock())
    for k in range(50):
        usage.request(
            "s", "p$dev", latency=0.001, payload={"query": f'{{ u(id: "{k}") {{ id }} }}'}
        )
    rows = usage.take().operations
    assert len(rows) == 1 and next(iter(rows.values())).count == 50
    assert len(usage._documents) == 51  # each text, and the one canonical text they share


def test_named_operations_are_known_by_name_whatever_their_text():
    first = identify("query Feed($n: Int) { posts(first: $n) { id } }", None)
    second = identify("query Feed { posts(first: 10) { id title } }", None)
    given = identify("query A { a } query B { b }", "B")
    assert first.key == second.key and first.name == "Feed"
    assert given.name == "B"


def test_past_the_cap_a_services_operations_fold_into_other():
    clock = Clock()
    counter = UsageCounter(operations_per_minute=2, clock=clock)
    for index in range(4):
        counter.request("s", "svc$dev", latency=0.002, payload={"query": f"query Q{index} {{ a }}"})
    counter.request("s", "twin$dev", latency=0.002, payload={"query": "query Q3 { a }"})
    snapshot = counter.take()
    keys = [
        (pid, op.operation.name or op.operation.key)
        for (_, pid, _, _), op in snapshot.operations.items()
    ]
    assert keys == [
        ("svc$dev", "Q0"),
        ("svc$dev", "Q1"),
        ("svc$dev", OTHER),
        ("twin$dev", "Q3"),  # another service has its own cap
    ]
    assert snapshot.operations[("s", "svc$dev", 100, OTHER)].count == 2
    # The cap holds for the rest of the minute, across flushes; a new minute starts afresh.
    counter.request("s", "svc$dev", latency=0.002, payload={"query": "query Q9 { a }"})
    assert [k[3] for k in counter.take().operations] == [OTHER]
    clock.now += 60
    counter.request("s", "svc$dev", latency=0.002, payload={"query": "query Q9 { a }"})
    assert [op.operation.name for op in counter.take().operations.values()] == ["Q9"]


def test_a_failed_flush_gives_its_counts_back():
    counter = UsageCounter(clock=Clock())
    counter.request("s", "p", latency=0.01, delay_ms=300, payload={"query": "{ a }"})
    taken = counter.take()
    counter.request("s", "p", latency=0.01, error=True, payload={"query": "{ a }"})
    counter.merge(taken)
    row = counter.current.services[("s", "p", 100)]
    assert (row.requests, row.errors, row.throttled, row.delays) == (2, 1, 1, [300])
    assert sum(row.latency) == 2
    assert next(iter(counter.current.operations.values())).count == 2


def test_a_text_sent_again_counts_on_its_operations_row_across_flushes_and_merges():
    clock = Clock()
    counter = UsageCounter(operations_per_minute=1, clock=clock)
    same = {"query": "query Q { a }"}
    batch = [same, {"query": "query R { b }"}, "not an operation", {"query": 3}]
    q = identify("query Q { a }", None).key
    for _ in range(3):
        counter.request("s", "p", latency=0.002, payload=batch)
    taken = counter.take()
    assert {k[3]: op.count for k, op in taken.operations.items()} == {q: 3, OTHER: 3}
    # Given back within the minute, the counts merge into the rows counting goes on in.
    counter.request("s", "p", latency=0.002, payload=batch)
    counter.merge(taken)
    counter.request("s", "p", latency=0.002, payload=batch)
    # Taken once the minute is over, then given back whole: its rows carry on as they were.
    clock.now += 60
    taken = counter.take()
    counter.request("s", "p", latency=0.002, payload=same)
    counter.merge(taken)
    clock.now -= 60
    counter.request("s", "p", latency=0.002, payload=batch)
    merged = counter.take()
    ops = {(k[2], k[3]): op.count for k, op in merged.operations.items()}
    assert ops == {(100, q): 6, (100, OTHER): 6, (101, q): 1}
    assert merged.services[("s", "p", 100)].requests == 6


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (200, b'{"data":{"errors":[{"id":"a"}]}}', (False, False)),  # a field aliased `errors`
        (200, b'{"data":null,"errors":[{"message":"x"}]}', (True, False)),
        (200, b'{"data":{"a":null},"errors": [{"code": 1003, "message":"cap"}]}', (True, True)),
        (200, b'[{"data":{"a":1}},{"data":null,"errors":[{"message":"x"}]}]', (True, False)),
        (200, b'[{"data":{"a":1}},{"data":{"b":[1]}}]', (False, False)),
        (500, b'{"errors":[{"message":"x"}]}', (True, False)),
        (200, {"errors": [{"code": 1003, "message": "cap"}]}, (True, True)),
        (200, [], (False, False)),
        (200, "type Note { id: ID! }", (False, False)),
    ],
)
def test_errors_are_read_from_the_answer_without_parsing_it(status, answer, expected):
    assert outcome(status, answer) == expected


def test_flushes_slow_down_while_many_services_are_busy():
    """A flush writes a few rows per service: with a thousand busy services it waits longer
    (at most `MAX_FLUSH_SECONDS`) so the database does not spend a tenth of a CPU on them."""
    assert flush_delay(0) == flush_delay(3) == flush_delay(200) == FLUSH_SECONDS
    assert flush_delay(400) == 2.0
    assert flush_delay(1000) == flush_delay(50_000) == MAX_FLUSH_SECONDS


def test_percentiles_come_from_the_buckets():
    histogram = [0] * 14
    assert quantile(0.5, histogram) is None
    histogram[3] = 10  # ten answers between 5 and 10 ms
    assert quantile(0.5, histogram) == 7.5
    histogram[13] = 90  # ninety above the last bound
    assert quantile(0.95, histogram) == 10000.0


def test_metrics_labels_are_bounded_per_server():
    rows = [("a", f"s{i}$dev", 10 - i, 1, 0, 0, 0, 0, 0, 1.0, [1] + [0] * 13) for i in range(4)] + [
        ("b", "t$dev", 5, 1, 0, 0, 0, 0, 0, 1.0, [0] * 14)
    ]
    kept = bounded(rows, 2)
    assert [(r[0], r[1], r[2]) for r in kept] == [
        ("a", "s0$dev", 10),
        ("a", "s1$dev", 9),
        ("b", "t$dev", 5),
        ("a", OTHER, 15),
    ]
    assert kept[-1][10][0] == 2
    assert service_label("acme~shop$prod") == "acme~shop/prod"


def test_metrics_token_is_compared_exactly():
    assert authorised(None, None)
    assert authorised("x" * 16, "Bearer " + "x" * 16)
    assert not authorised("x" * 16, "Bearer " + "x" * 15)
    assert not authorised("x" * 16, "x" * 16)
    assert not authorised("x" * 16, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"metrics": {"tokn": "a" * 20}}, "unknown `metrics` keys ['tokn']"),
        ({"metrics": {"token": "short"}}, "16 characters"),
        ({"metrics": {"enabled": "yes"}}, "`metrics.enabled` must be a boolean"),
        ({"usage": {"retentionDays": 3}}, "7 or more"),
        ({"usage": {"operationsPerMinute": 0}}, "at least 1"),
        ({"usage": []}, "`usage` must be a mapping"),
    ],
)
def test_bad_usage_and_metrics_config_fails_loudly(extra, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config({**DB, **extra}, {})


def test_metrics_are_off_unless_configured_and_counting_is_on():
    assert not parse_config(DB, {}).usage.metrics_enabled
    assert parse_config(DB, {}).usage.enabled
    config = parse_config({**DB, "metrics": {"token": "t" * 16}}, {}).usage
    assert config.metrics_enabled and config.metrics_token == "t" * 16
    assert not parse_config({**DB, "usage": {"enabled": False}}, {}).usage.enabled
