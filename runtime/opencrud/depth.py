"""How deeply a document nests its selections (fragments followed).

A 200-level query would compile to SQL nested 200 sub-selects deep; it is refused before any
work with a clear message instead.
"""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

MAX_DEPTH = 40


def selection_depth(document: DocumentNode) -> int:
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    known: dict[str, int] = {}
    depths = [
        _depth(d.selection_set, fragments, frozenset(), known)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    ]
    return max(depths, default=0)


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str],
    known: dict[str, int],
) -> int:
    """`known` holds each fragment's depth once measured: a fragment spread twice at every level
    of a chain would otherwise be measured 2**n times."""
    if selection_set is None:
        return 0
    deepest = 0
    for node in selection_set.selections:
        if isinstance(node, FieldNode):
            if node.name.value.startswith("__"):
                continue  # introspection nests by design and is not compiled to SQL
            deepest = max(deepest, 1 + _depth(node.selection_set, fragments, seen, known))
            if deepest > MAX_DEPTH:
                return deepest
        elif isinstance(node, InlineFragmentNode):
            deepest = max(deepest, _depth(node.selection_set, fragments, seen, known))
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name in fragments and name not in seen:
                if name not in known:
                    fragment = fragments[name]
                    known[name] = _depth(fragment.selection_set, fragments, seen | {name}, known)
                deepest = max(deepest, known[name])
    return deepest
