from graphql import GraphQLError, ValidationRule
from graphql.language import FieldNode, OperationDefinitionNode, SelectionSetNode

MAX_DEPTH = 10


def _depth(selection_set: SelectionSetNode | None, fragments: dict, seen: frozenset) -> int:
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            deepest = max(deepest, 1 + _depth(selection.selection_set, fragments, seen))
        elif hasattr(selection, "name") and selection.name is not None:  # fragment spread
            name = selection.name.value
            if name in seen or name not in fragments:
                continue
            deepest = max(deepest, _depth(fragments[name].selection_set, fragments, seen | {name}))
        else:  # inline fragment
            deepest = max(deepest, _depth(selection.selection_set, fragments, seen))
    return deepest


class MaxDepthRule(ValidationRule):
    """Refuse documents nested deeper than any real client needs."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: object) -> None:
        fragments = {
            definition.name.value: definition
            for definition in self.context.document.definitions
            if getattr(definition, "kind", "") == "fragment_definition"
        }
        if _depth(node.selection_set, fragments, frozenset()) > MAX_DEPTH:
            self.report_error(
                GraphQLError(f"The query is nested deeper than {MAX_DEPTH} levels.", node)
            )
