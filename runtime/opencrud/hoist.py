"""Literal hoisting: documents that differ only in their values share one parsed, validated and
compiled plan.

Clients that inline values (playgrounds, `curl`, scripts) send a new document text with every
request, and parsing, validating and compiling a text costs milliseconds. A regular-expression
scan (a step per literal) finds the string and number literals and cuts the text into a
*skeleton*: the text with the n-th literal replaced by `$_n`. The first document of a skeleton is
parsed and validated as it is (so its errors are exactly today's); a tokenizer tells which of
its literals sit in argument positions of its operations, and graphql-core's `TypeInfo` the type
each stands for. From then on documents of that skeleton are answered from the *hoisted*
document (the skeleton with those literals as variables) and the literals' values as variables.

What keeps the answers and errors equal to the unhoisted path's:

- Only literals whose type takes a variable value exactly as it takes the literal are hoisted:
  String, Int (in range), Float (finite), ID, and Prisma's DateTime and UUID (checked by their
  own literal rules). Booleans, enums, nulls, Json, block strings, values typed as lists, literals
  in fragments and in variable defaults stay in the text (the hoisted document's key then holds
  them). A value the type refuses (a string for an Int, 2^31, a bad date) sends the request down
  the unhoisted path, which reports it in Sangria's words as before.
- The hoisted document keeps every other token of the text, so depth, aliases, root fields and
  every other limit see the same document. Anything unexpected (a hoisted document that does not
  parse or validate, variables that do not coerce) falls back to the unhoisted path.
- Locations in errors are mapped back to the request's own text (`Hoisted.relocate`).
- A text answered hoisted and then sent again is loaded as itself (once, off the event loop),
  so a client repeating one text pays for a known text's lookup, not for a scan every time;
  a text sent once (new values every request) is only remembered by its hash.
- Skeletons and hoisted documents are cached in the API of the datamodel beside the documents,
  under tagged keys, so a client's own text never finds them; their statements name the
  placeholder schema as every compiled statement does, and values travel only as variables.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FloatValueNode,
    GraphQLError,
    GraphQLID,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    IntValueNode,
    NameNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    TypeNode,
    VariableDefinitionNode,
    VariableNode,
    Visitor,
    parse_type,
    visit,
)

# The literals a request may differ in: strings and numbers. Everything else (names, punctuation,
# whitespace, comments, block strings) is skipped in runs, so a scan costs one step per literal.
# A number must not run into a name or a dot, as in GraphQL.
_LITERALS = re.compile(
    r"""
    (?:[_A-Za-z][_0-9A-Za-z]*|[^"\#0-9_A-Za-z-]+|\#[^\n\r]*|\"\"\"(?:\\\"\"\"|(?!\"\"\")[\s\S])*\"\"\")++
    |(?P<string>"(?:[^"\\\n\r]|\\.)*+")
    |(?P<number>-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?(?![._A-Za-z0-9]))
    """,
    re.VERBOSE,
)
# One significant token per match, for the structure of the first text of a shape. A character
# the scan does not know matches `bad`, and the text is left to graphql-core's parser.
_TOKENS = re.compile(
    r"""
    (?P<ignored>[ \t\n\r,\ufeff]+|\#[^\n\r]*)
    |(?P<block>\"\"\"(?:\\\"\"\"|(?!\"\"\")[\s\S])*\"\"\")
    |(?P<string>"(?:[^"\\\n\r]|\\.)*")
    |(?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![._A-Za-z0-9]))
    |(?P<name>[_A-Za-z][_0-9A-Za-z]*)
    |(?P<punct>\.\.\.|[!$&():=@\[\]{|}])
    |(?P<bad>[\s\S])
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f]")  # GraphQL refuses them in strings (tab aside)
_OUR_VARIABLE = re.compile(r"_[0-9]+")
_OPERATION_KEYWORDS = frozenset({"query", "mutation", "subscription"})
_INT_RANGE = range(-(2**31), 2**31)
# Scalars whose variable values coerce exactly as their literals do (Prisma's DateTime and UUID
# keep the value as the text; their literal rules are applied before hoisting).
_HOISTABLE = frozenset({"String", "Int", "Float", "ID", "DateTime", "UUID"})


@dataclass(frozen=True)
class Literal:
    """A string or number token: where it is in the text."""

    start: int
    end: int
    kind: str  # "string" or "number"


@dataclass(frozen=True)
class Scan:
    """A document cut at its literals: `skeleton` (the text with the n-th literal replaced by
    `$_n`) keys the shape. Texts with one skeleton have the same tokens but for the literals,
    in the same places."""

    text: str
    literals: tuple[Literal, ...]
    skeleton: str


# The texts scanned last and their scans: usage counting scans the text the planner scanned
# before the request went to the database (`runtime.usage.counter.canonical`), while other
# requests scanned theirs. A string keeps its hash, so finding it again costs a dict lookup.
RECENT_SCANS = 256
_recent: dict[str, Scan | None] = {}


def scan(text: str) -> Scan | None:
    """The string and number literals of a text, or None when it has none."""
    try:
        return _recent[text]
    except KeyError:
        pass
    found = _scan(text)
    if len(_recent) >= RECENT_SCANS:
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):  # another thread's turn
            del _recent[next(iter(_recent))]
    _recent[text] = found
    return found


def _scan(text: str) -> Scan | None:
    if "\x00" in text:
        return None
    literals = []
    pieces = []
    at = 0
    for match in _LITERALS.finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue
        start, end = match.span()
        pieces += [text[at:start], f"$_{len(literals)}"]
        literals.append(Literal(start, end, kind))
        at = end
    if not literals:
        return None
    pieces.append(text[at:])
    return Scan(text, tuple(literals), "".join(pieces))


def _candidates(text: str) -> dict[int, int] | None:
    """Which literals of the first text of a shape may be hoisted: those in argument positions
    of its operations (by their offset, with the index of their operation), not those in
    fragments or variable defaults. None when the text is anything but a plain executable
    document, or declares a variable named like ours."""
    tokens: list[tuple[str, int, int]] = []
    for match in _TOKENS.finditer(text):
        kind = match.lastgroup
        assert kind is not None
        if kind == "ignored":
            continue
        if kind == "bad":
            return None
        tokens.append((kind, match.start(), match.end()))
    found: dict[int, int] = {}
    depth = 0  # braces
    parens: list[str] = []  # "arguments" or "variables"
    definition = ""  # "operation" or "fragment"
    operation = -1
    for i, (kind, start, end) in enumerate(tokens):
        value = text[start:end] if kind in ("punct", "name") else ""
        if kind == "punct":
            if value == "{":
                if depth == 0 and not parens and definition == "":
                    definition, operation = "operation", operation + 1  # `{ ... }` shorthand
                depth += 1
            elif value == "}":
                depth -= 1
                if depth < 0:
                    return None
                if depth == 0 and not parens:
                    definition = ""
            elif value == "(":
                directive = i >= 2 and text[tokens[i - 2][1] : tokens[i - 2][2]] == "@"
                parens.append("variables" if depth == 0 and not directive else "arguments")
            elif value == ")":
                if not parens:
                    return None
                parens.pop()
            elif value == "$" and parens[-1:] == ["variables"] and i + 1 < len(tokens):
                after = tokens[i + 1]
                if _OUR_VARIABLE.fullmatch(text[after[1] : after[2]]):
                    return None  # the client's own `$_0` would meet ours
            continue
        if depth == 0 and not parens and kind == "name" and definition == "":
            if value in _OPERATION_KEYWORDS:
                definition, operation = "operation", operation + 1
            elif value == "fragment":
                definition = "fragment"
            else:
                return None
            continue
        in_arguments = definition == "operation" and parens[-1:] == ["arguments"]
        if kind in ("string", "number") and in_arguments:
            found[start] = operation
    if depth != 0 or parens:
        return None
    return found


@dataclass(frozen=True)
class Slot:
    """How one literal position of a shape is hoisted: as a variable of `type`, or (None) kept
    in the text."""

    type: GraphQLInputType | None
    operation: int


@dataclass(frozen=True)
class Shape:
    """What the first valid document of a skeleton taught: each literal's slot. A shape that is
    not `hoistable` keeps its documents on the unhoisted path."""

    slots: tuple[Slot, ...]
    hoistable: bool = True


def learn_shape(schema: GraphQLSchema, document: DocumentNode, found: Scan) -> Shape:
    """Each literal's input type, from the validated document of the first text of a shape."""
    candidates = _candidates(found.text)
    if candidates is None:
        return Shape((), hoistable=False)
    types: dict[int, GraphQLInputType | None] = {}
    type_info = TypeInfo(schema)

    class Types(Visitor):
        def enter(self, node: Any, *_: Any) -> None:
            if isinstance(node, StringValueNode | IntValueNode | FloatValueNode) and (
                node.loc is not None
            ):
                types[node.loc.start] = type_info.get_input_type()

    visit(document, TypeInfoVisitor(type_info, Types()))
    slots = []
    for literal in found.literals:
        t = types.get(literal.start) if literal.start in candidates else None
        named = t.of_type if isinstance(t, GraphQLNonNull) else t
        hoistable = isinstance(named, GraphQLScalarType) and named.name in _HOISTABLE
        slots.append(Slot(t if hoistable else None, candidates.get(literal.start, -1)))
    return Shape(tuple(slots))


_REFUSED = object()


def literal_value(t: GraphQLInputType, literal: Literal, raw: str) -> Any:
    """The variable value standing for a literal of type `t`, or `_REFUSED` when the type would
    refuse the literal (the unhoisted path then reports it in Sangria's words)."""
    named = t.of_type if isinstance(t, GraphQLNonNull) else t
    assert isinstance(named, GraphQLScalarType)
    name = named.name
    if literal.kind == "number":
        integer = "." not in raw and "e" not in raw and "E" not in raw
        if name == "Int":
            return int(raw) if integer and int(raw) in _INT_RANGE else _REFUSED
        if name == "Float":
            number = float(raw)
            return number if math.isfinite(number) else _REFUSED
        if name == "ID" and integer:
            return GraphQLID.parse_literal(IntValueNode(value=raw))
        return _REFUSED
    if name not in ("String", "ID", "DateTime", "UUID"):
        return _REFUSED
    value = _string_value(raw)
    if value is None:
        return _REFUSED
    if name in ("DateTime", "UUID"):
        try:
            named.parse_literal(StringValueNode(value=value))
        except (GraphQLError, TypeError, ValueError):  # the scalar refuses: unhoisted path
            return _REFUSED
    return value


def _string_value(raw: str) -> str | None:
    """A string token's value. GraphQL's escapes are JSON's; anything JSON refuses (or a lone
    surrogate or a control character, which GraphQL refuses) is left to graphql-core."""
    if _CONTROL.search(raw):
        return None
    if "\\" not in raw:
        return raw[1:-1]
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if any("\ud800" <= c <= "\udfff" for c in value):
        return None
    return value  # type: ignore[no-any-return]


@dataclass
class Hoisted:
    """A request's text as its hoisted document's key, with the values of its hoisted literals
    and where they sat (to map error locations back)."""

    text: str  # the hoisted document's text (kept literals included)
    values: dict[str, Any]
    moves: tuple[tuple[int, int, int], ...]  # (hoisted offset, original offset, length change)
    original: str

    def relocate(self, body: bytes) -> bytes:
        """An answer's error locations in the request's own text (they were computed in the
        hoisted text, whose columns differ after each hoisted literal on a line)."""
        if b'"locations"' not in body:
            return body
        answer = json.loads(body)
        lines = _line_starts(self.text)
        originals = _line_starts(self.original)
        for entry in answer if isinstance(answer, list) else [answer]:
            for error in entry.get("errors") or () if isinstance(entry, dict) else ():
                for location in error.get("locations") or ():
                    offset = lines[location["line"] - 1] + location["column"] - 1
                    moved = offset
                    for at, _, change in self.moves:
                        if at < offset:
                            moved -= change
                    location["column"] = moved - originals[location["line"] - 1] + 1
        return json.dumps(answer, separators=(",", ":")).encode()


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for match in re.finditer(r"\r\n|[\n\r]", text):
        starts.append(match.end())
    return starts


def hoist(found: Scan, shape: Shape) -> Hoisted | None:
    """The request as its hoisted document's text and variables; None when a literal does not
    fit its slot's type (the unhoisted path answers it)."""
    if not shape.hoistable or len(shape.slots) != len(found.literals):
        return None
    text = found.text
    pieces = []
    values: dict[str, Any] = {}
    moves = []
    at = 0
    length = 0
    for n, (literal, slot) in enumerate(zip(found.literals, shape.slots, strict=True)):
        raw = text[literal.start : literal.end]
        before = text[at : literal.start]
        pieces.append(before)
        length += len(before)
        if slot.type is None:
            piece = raw
        else:
            value = literal_value(slot.type, literal, raw)
            if value is _REFUSED:
                return None
            values[f"_{n}"] = value
            piece = f"$_{n}"
            moves.append((length, literal.start, len(piece) - len(raw)))
        pieces.append(piece)
        length += len(piece)
        at = literal.end
    pieces.append(text[at:])
    return Hoisted("".join(pieces), values, tuple(moves), text)


def declare(document: DocumentNode, shape: Shape) -> DocumentNode:
    """The hoisted document with its variables declared on their operations (added to the
    syntax tree, not to the text, so every token keeps its place)."""
    definitions = []
    operation = -1
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            operation += 1
            added = tuple(
                VariableDefinitionNode(
                    variable=VariableNode(name=NameNode(value=f"_{n}")),
                    type=_type_node(slot.type),
                    directives=(),
                )
                for n, slot in enumerate(shape.slots)
                if slot.type is not None and slot.operation == operation
            )
            if added:
                definition = OperationDefinitionNode(
                    operation=definition.operation,
                    name=definition.name,
                    variable_definitions=(*(definition.variable_definitions or ()), *added),
                    directives=definition.directives,
                    selection_set=definition.selection_set,
                    loc=definition.loc,
                )
        definitions.append(definition)
    return DocumentNode(definitions=tuple(definitions), loc=document.loc)


def _type_node(t: GraphQLInputType | None) -> TypeNode:
    assert t is not None and not isinstance(t, GraphQLList)
    return parse_type(str(t), no_location=True)
