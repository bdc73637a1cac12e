"""Documents that differ only in their inlined values share one plan (literal hoisting), and
answer exactly as they did when each was parsed, validated and compiled on its own.

The oracle: the same datamodel deployed twice with the same rows; one service answers through
one API whose caches learn shapes as the runtime's do (hoisting), the other through a fresh API
per document (every document on its own, as before hoisting). Every document of a shape after
the first is compared, answers and errors alike, with ids masked where creates make new ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.opencrud.executor import ServiceApi, execute, service_api
from runtime.opencrud.limits import RequestLimits
from tests.runtime.conftest import Database
from tests.runtime.opencrud.conftest import Service, deploy

DATAMODEL = """
enum Role { ADMIN USER }

type User {
  id: ID! @id
  email: String! @unique
  name: String!
  age: Int
  score: Float
  active: Boolean
  born: DateTime
  role: Role
  nicknames: [String!]! @scalarList(strategy: RELATION)
  data: Json
  posts: [Post!]!
}

type Post {
  id: ID! @id
  title: String!
  published: Boolean! @default(value: false)
  author: User! @relation(link: INLINE)
}
"""

SEED = [
    'mutation { createUser(data: {email: "ann@x.io", name: "Ann", age: 31, score: 1.5, '
    'active: true, born: "1990-05-01", role: ADMIN, nicknames: {set: ["a", "nn"]}, '
    'data: "{\\"k\\": 1}", posts: {create: [{title: "Hello", published: true}, '
    '{title: "Draft"}]}}) { email } }',
    'mutation { createUser(data: {email: "bob@x.io", name: "Bob", age: 25, score: 3, '
    'active: false, born: "2001-01-01T10:00:00Z", role: USER, posts: {create: '
    '[{title: "Bob\'s"}]}}) { email } }',
    'mutation { createUser(data: {email: "cy@x.io", name: "Cy \\"the\\" café", age: 40}) '
    "{ email } }",
]

# Each entry: a template and the values it is sent with, in order. The first text of a shape
# teaches it; every later text is answered from the hoisted plan and compared with the oracle.
# Values that the type refuses must answer the unhoisted error; values of a different kind
# (a string where a number was) fall back too.
SHAPES: list[tuple[str, list[tuple[Any, ...]]]] = [
    ('{ user(where: {email: "%s"}) { name age } }', [("ann@x.io",), ("bob@x.io",), ("no@x.io",)]),
    (
        '{ users(where: {age_gt: %s, name_contains: "%s"}, first: %s, orderBy: name_ASC) '
        "{ name age } }",
        [(20, "", 10), (30, "n", 10), (0, "o", 1), (2147483647, "x", 5), (2147483648, "x", 5)],
    ),
    (
        "{ users(where: {age_gte: %s}) { name } }",
        [(1,), ('"1"',), (1.5,), (-2147483649,), (25,)],
    ),
    (
        '{ users(where: {email_in: ["%s", "%s"]}, orderBy: email_DESC) { email } }',
        [
            ("ann@x.io", "cy@x.io"),
            ("bob@x.io", "nobody"),
            ("é", "ann@x.io"),
        ],
    ),
    (
        "{ users(where: {score_gte: %s, active: %s}, orderBy: email_ASC) { email score } }",
        [(1.0, "true"), (2, "false"), (1e400, "true"), ("1e-3", "true"), (0.5, '"true"')],
    ),
    (
        '{ users(where: {born_gt: "%s"}, orderBy: born_ASC) { email born } }',
        [("1980",), ("1995-01-01T00:00:00.000Z",), ("yesterday",), ("2000-02-30",), ("2000",)],
    ),
    (
        '{ users(where: {name: "%s", role: %s}) { email role } }',
        [("Ann", "ADMIN"), ("Bob", "USER"), ("Bob", "NOPE"), ("Ann", '"ADMIN"')],
    ),
    (
        "{ users(orderBy: email_ASC, first: %s) "
        "{ email name @skip(if: %s) age @include(if: %s) } }",
        [(2, "true", "false"), (3, "false", "true"), (1, "false", "false")],
    ),
    (
        '{ a: user(where: {email: "%s"}) { n: name } b: user(where: {email: "%s"}) { age } '
        'c: users(where: {name_starts_with: "%s"}) { email } }',
        [("ann@x.io", "bob@x.io", "C"), ("bob@x.io", "ann@x.io", "A"), ("x", "y", "z")],
    ),
    (
        'query { users(where: {email: "%s"}) { ...F email } } '
        'fragment F on User { posts(where: {title: "Hello"}, first: 5) { title } }',
        [("ann@x.io",), ("bob@x.io",)],
    ),
    (  # literals in fragments and variable defaults stay in the text
        'query($n: Int = %s) { users(where: {email_not: "%s"}, first: $n, orderBy: email_ASC) '
        '{ ...G } } fragment G on User { email posts(where: {title_not: "%s"}) { title } }',
        [(1, "x", "Hello"), (2, "ann@x.io", "Draft"), (3, "y", "Nope"), ("a", "y", "z")],
    ),
    (
        'query Q { user(where: {email: "%s"}) { name } } '
        "query R { users(first: %s, orderBy: email_ASC) { email } }",
        [("ann@x.io", 1), ("bob@x.io", 2)],
    ),
    (
        '{ user(where: {email: "%s"}) { posts(where: {published: %s}) { title } } }',
        [
            ("ann@x.io", "true"),
            ("ann@x.io", "false"),
            ("ann@x.io", "null"),
        ],
    ),
    ('{ user(where: {email: "%s"}) { nicknames data } }', [("ann@x.io",), ("cy@x.io",)]),
    (
        '{ users(where: {name: "%s"}) { name } }',
        [
            ('Cy \\"the\\" caf\\u00e9',),
            ("Cy \\u0022the\\u0022 café",),
            ("\\ud800",),
            ("\\q",),
        ],
    ),
    (
        '{ users(where: {id: "%s"}) { email } usersConnection(where: {age_lt: %s}) '
        "{ aggregate { count } } }",
        [("nope", 30), ("x", 100)],
    ),
    ('{ __type(name: "%s") { name } }', [("User",), ("Post",), ("Role",)]),
    ('{ users(where: {posts_some: {title_contains: "%s"}}) { email } }', [("ell",), ("'",)]),
    ("{ posts(first: %s) { title } }", [(-1,), (2,), (-1,)]),
    ('{ user(where: {email: "%s", id: "%s"}) { email } }', [("a", "b"), ("c", "d")]),
    ("{ users(where: {age: %s}) { name } }", [("null",), (25,), (40,)]),
    ('{ users(where: {name: "%s"}) { name bogus } }', [("Ann",), ("Bob",)]),
    ('{ users(where: {email: "%s" }) { name } }', [("ann@x.io",), ("bob@x.io",)]),
]

MUTATIONS: list[tuple[str, list[tuple[Any, ...]]]] = [
    (
        'mutation { updateUser(where: {email: "%s"}, data: {name: "%s", age: %s}) { name age } }',
        [
            ("ann@x.io", "Ann 2", 32),
            ("bob@x.io", "Bob 2", 26),
            ("none@x.io", "Nobody", 1),
            ("bob@x.io", "Bob 3", "26"),
            ("bob@x.io", "Bob 3", 3000000000),
        ],
    ),
    (
        'mutation { createUser(data: {email: "%s", name: "%s", score: %s, born: "%s"}) '
        "{ id email name score born } }",
        [
            ("new1@x.io", "New", 1.25, "2020-01-01"),
            ("new2@x.io", "Newer", 7, "2021-06-01T12:00:00Z"),
            ("ann@x.io", "Clash", 1, "2020"),
            ("new3@x.io", "Bad date", 1, "not a date"),
        ],
    ),
    (
        'mutation { a: updateUser(where: {email: "%s"}, data: {name: "%s"}) { name } '
        'b: updateUser(where: {email: "%s"}, data: {name: "%s"}) { name } }',
        [
            ("cy@x.io", "Cy 2", "nobody-at-all@x.io", "z"),
            ("cy@x.io", "Cy 3", "nobody-with-a-much-longer-address@x.io", "zz"),
            ("nobody-at-all@x.io", "a", "cy@x.io", "Cy 4"),
        ],
    ),
    (
        'mutation { updateUser(where: {email: "%s"}, data: {posts: {create: [{title: "%s"}]}}) '
        '{ posts(where: {title: "%s"}) { title published } } }',
        [("bob@x.io", "T1", "T1"), ("cy@x.io", "T2", "T2")],
    ),
    ('mutation { deleteManyPosts(where: {title: "%s"}) { count } }', [("T1",), ("T2",), ("x",)]),
]

_ID = re.compile(r'"c[0-9a-z]{24}"')


@pytest.fixture(scope="module")
def pair(database: Database) -> Iterator[tuple[Service, Service]]:
    hoisting, plain = deploy(database, DATAMODEL), deploy(database, DATAMODEL)
    for document in SEED:
        for service in (hoisting, plain):
            assert "errors" not in service.query(document), document
    yield hoisting, plain
    hoisting.conn.close()
    plain.conn.close()


def answer(service: Service, api: ServiceApi, payload: Any, **kwargs: Any) -> Any:
    got = execute(api, service.schema_name, payload, service.conn, "local:test", **kwargs)
    service.conn.commit()
    return got.status, json.loads(_ID.sub('"<id>"', got.body.decode()))


def render(template: str, values: tuple[Any, ...]) -> str:
    return template % values


def hoisted_texts(api: ServiceApi) -> int:
    return sum(1 for key in api.documents if isinstance(key, tuple) and key[0] == "hoisted")


def compare(
    pair: tuple[Service, Service],
    shapes: list[tuple[str, list[tuple[Any, ...]]]],
    schema_json: str,
    **payload: Any,
) -> int:
    """Send every document to both services; returns how many were answered hoisted."""
    hoisting, plain = pair
    hoisted = 0
    for template, rows in shapes:
        for values in rows:
            text = render(template, values)
            body = {"query": text, **payload}
            ours = answer(hoisting, hoisting.api, body)
            theirs = answer(plain, service_api(schema_json), body)
            assert ours == theirs, text
            if hoisting.api.documents.lookup(text) is None:
                hoisted += 1
    return hoisted


@pytest.fixture(scope="module")
def schema_json(pair: tuple[Service, Service]) -> str:
    from runtime.datamodel import parse_datamodel

    result = parse_datamodel(DATAMODEL)
    assert result.schema is not None
    return result.schema.to_json()


def test_queries_answer_as_unhoisted_documents_do(
    pair: tuple[Service, Service], schema_json: str
) -> None:
    hoisted = compare(pair, SHAPES, schema_json)
    assert hoisted >= 25  # most documents after the first of their shape were hoisted
    assert hoisted_texts(pair[0].api) > 0


def test_mutations_answer_and_write_as_unhoisted_documents_do(
    pair: tuple[Service, Service], schema_json: str
) -> None:
    hoisted = compare(pair, MUTATIONS, schema_json)
    assert hoisted >= 6
    hoisting, plain = pair
    listing = "{ users(orderBy: email_ASC) { email name age score born posts { title } } }"
    assert hoisting.data(listing) == plain.data(listing)


def test_operation_names_and_own_variables_mix_with_hoisted_literals(
    pair: tuple[Service, Service], schema_json: str
) -> None:
    document = (
        'query Q($n: Int, $e: String) { users(first: $n, where: {email_not: $e, name_not: "%s"}, '
        "orderBy: email_ASC) { email } } "
        'query R { user(where: {email: "%s"}) { name } }'
    )
    shapes = [(document, [("Ann", "bob@x.io"), ("Bob", "ann@x.io"), ("x", "y")])]
    for name, variables in (
        ("Q", {"n": 2, "e": "ann@x.io"}),
        ("Q", {"n": 1}),
        ("R", None),
        ("Q", {"n": "two"}),  # the client's bad variable: reported as before
        (None, None),
        ("S", None),
    ):
        compare(pair, shapes, schema_json, operationName=name, variables=variables)


def test_a_bad_literal_after_a_good_one_and_before_it_gets_the_unhoisted_error(
    pair: tuple[Service, Service],
) -> None:
    hoisting, _ = pair
    good = '{ users(where: {age_gt: 1, name_contains: "A"}) { name } }'
    out_of_range = '{ users(where: {age_gt: 2147483648, name_contains: "A"}) { name } }'
    wrong_kind = '{ users(where: {age_gt: "1", name_contains: "A"}) { name } }'
    message = (
        "Argument 'where' expected type 'UserWhereInput' but got: {age_gt: %s, "
        "name_contains: \"A\"}. Reason: 'age_gt' Int value expected"
    )
    for _ in range(2):  # good first, then the shape is known and the bad ones follow
        assert hoisting.data(good) == {"users": [{"name": "Ann 2"}]}
        assert hoisting.error(out_of_range)["message"].startswith(message % "2147483648")
        assert hoisting.error(wrong_kind)["message"].startswith(message % '"1"')
    date = '{ users(where: {born_lt: "%s"}) { name } }'
    bad = hoisting.error(date % "someday")  # bad first: nothing learned from it
    assert "Reason: 'born_lt' Date value expected" in bad["message"]
    assert hoisting.data(date % "1991") == {"users": [{"name": "Ann 2"}]}
    assert hoisting.error(date % "someday") == bad
    assert hoisting.data(date % "2100") is not None


def test_error_locations_point_into_the_text_the_client_sent(pair: tuple[Service, Service]) -> None:
    hoisting, _ = pair
    template = (
        'mutation { a: updateUser(where: {email: "%s"}, data: {name: "%s"}) { name } '
        'b: updateUser(where: {email: "%s"}, data: {name: "Cy 9"}) { name } }'
    )
    for first, other in (("nobody@x.io", "n"), ("someone.with.a.long.address@x.io", "nnnnnnnn")):
        text = template % (first, other, "cy@x.io")
        result = hoisting.query(text)
        (error,) = result["errors"]
        assert error["locations"] == [{"line": 1, "column": 12}]
        text = template % ("cy@x.io", other, first)
        (error,) = hoisting.query(text)["errors"]
        assert error["locations"] == [{"line": 1, "column": text.index("b: updateUser") + 1}]
        assert error["path"] == ["b"]


def test_limits_see_the_real_document(pair: tuple[Service, Service]) -> None:
    """A hoisted plan never lets through what the limits refuse: root fields (aliases), depth."""
    hoisting, _ = pair
    limits = RequestLimits(root_fields=25)
    aliases = " ".join(f'a{i}: user(where: {{email: "%s{i}"}}) {{ name }}' for i in range(30))
    for value in ("x", "y", "zz"):
        text = "{ " + aliases % ((value,) * 30) + " }"
        _, body = answer(hoisting, hoisting.api, {"query": text}, limits=limits)
        assert body["errors"][0]["code"] == 1001
        assert "selects 30 root fields" in body["errors"][0]["message"]
    few = " ".join(f'a{i}: user(where: {{email: "%s"}}) {{ name }}' for i in range(3))
    for value in ("ann@x.io", "bob@x.io"):
        _, body = answer(
            hoisting, hoisting.api, {"query": "{ " + few % ((value,) * 3) + " }"}, limits=limits
        )
        assert "errors" not in body
    deep = (
        '{ user(where: {email: "%s"}) { ' + "posts { author { " * 25 + "id" + " } }" * 25 + " } }"
    )
    for value in ("ann@x.io", "bob@x.io"):
        error = hoisting.error(deep % value)
        assert "nested more than 40 levels" in error["message"]


def test_a_batch_mixes_hoisted_and_unhoisted_operations(pair: tuple[Service, Service]) -> None:
    hoisting, plain = pair
    batch = [
        {"query": '{ user(where: {email: "ann@x.io"}) { email } }'},
        {"query": '{ user(where: {email: "bob@x.io"}) { email } }'},
        {"query": "{ user(where: {email: 5}) { email } }"},
    ]
    assert answer(hoisting, hoisting.api, batch) == answer(plain, fresh_api(), batch)


def fresh_api() -> ServiceApi:
    from runtime.datamodel import parse_datamodel

    result = parse_datamodel(DATAMODEL)
    assert result.schema is not None
    return service_api(result.schema.to_json())


def test_clients_cannot_reach_hoisted_documents_or_meet_their_variables(
    pair: tuple[Service, Service],
) -> None:
    hoisting, _ = pair
    for email in ("ann@x.io", "bob@x.io"):  # the shape is known and hoisted
        assert hoisting.data(f'{{ user(where: {{email: "{email}"}}) {{ age }} }}')["user"]
    # The hoisted text itself, sent by a client, is a document with an undeclared variable.
    error = hoisting.error("{ user(where: {email: $_0}) { age } }", {"_0": "ann@x.io"})
    assert error["message"] == "Variable '$_0' is not defined."
    # A client's own `$_0` beside literals: answered unhoisted, with its own value.
    own = (
        'query($_0: String) { user(where: {email: $_0}) { age } a: user(where: {email: "%s"}) '
        "{ age } }"
    )
    ann = hoisting.data('{ user(where: {email: "ann@x.io"}) { age } }')["user"]
    for email in ("bob@x.io", "cy@x.io"):
        data = hoisting.data(own % email, {"_0": "ann@x.io"})
        assert data["user"] == ann and data["a"] is not None
        assert hoisting.api.documents.lookup(own % email) is not None


def test_a_hoisted_text_sent_again_is_loaded_as_itself_and_one_sent_once_is_not(
    pair: tuple[Service, Service],
) -> None:
    """A client repeating a text whose shape is known (a playground re-running a query, a
    script polling one id) gets it loaded as itself on the second sending, and from then on
    it is a known text (the `_prepared` road), not scanned and hoisted every time; texts sent
    once (inlined values, new every request) keep taking no room beside the documents."""
    from runtime.opencrud.executor import mutation_fields, plan

    hoisting, plain = pair
    api = fresh_api()
    template = '{ user(where: {email: "%s"}) { email age } }'
    first, repeated, once = (template % e for e in ("ann@x.io", "bob@x.io", "cy@x.io"))
    assert answer(hoisting, api, {"query": first}) == answer(plain, fresh_api(), {"query": first})
    assert api.documents.lookup(first) is not None  # the first of its shape: loaded as itself
    documents = len(api.documents)

    expected = answer(plain, fresh_api(), {"query": repeated})
    assert answer(hoisting, api, {"query": once}) == answer(plain, fresh_api(), {"query": once})
    assert mutation_fields(api, {"query": repeated}) == []  # a look, not a sending
    assert answer(hoisting, api, {"query": repeated}) == expected
    assert api.documents.lookup(repeated) is None and api.documents.lookup(once) is None
    assert len(api.documents) == documents + 1  # the hoisted document, shared by both

    # Sent again on the event loop: parsing is not done there, so it goes to a thread...
    assert plan(api, {"query": repeated}, "local:test", cached_only=True) is None
    # ...whose planning loads it as itself; from then on it is found as it is.
    assert answer(hoisting, api, {"query": repeated}) == expected
    assert api.documents.lookup(repeated) is not None
    assert plan(api, {"query": repeated}, "local:test", cached_only=True) is not None
    assert api.documents.lookup(once) is None
    assert answer(hoisting, api, {"query": repeated}) == expected

    # Dropped from the documents (a client cycling through more texts than they hold), it is
    # answered hoisted again, never parsed on every request.
    api.documents.forget(lambda key: key == repeated)
    for _ in range(3):
        assert plan(api, {"query": repeated}, "local:test", cached_only=True) is not None
        assert answer(hoisting, api, {"query": repeated}) == expected
        assert api.documents.lookup(repeated) is None
