"""The data browser: a service's rows, read and written through the service's own GraphQL API.

Everything goes through the API the service's clients use, with a short-lived service token,
so the server's rules apply to the console as to anyone (unique fields, required fields and
relations, the sandbox's throttle and storage cap) and the server's errors are what the form
shows. Documents are built from the deployed datamodel (`Service.datamodel`, parsed with the
runtime's own parser and named with its own naming rules, so they match the generated API);
names in a document come only from that datamodel, and every value a person typed travels as a
GraphQL variable, never inside the document.

Prisma Admin staged edits locally and committed them in a batch; here each save is one
mutation, and one audit event (`AuditAction.DATA_ROW_*`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.http import Http404, HttpRequest

from accounts.models import AuditAction, Role, User, get_membership
from runtime.datamodel import parse_datamodel
from runtime.datamodel.schema import Field, Model, Schema
from runtime.opencrud.naming import camel_case, plural
from servers.deploys import audit_service, service_token
from servers.management_api import ManagementClient, PrismaError, ServerUnreachable
from servers.models import Service

PAGE_SIZE = 20
# The console's token for one call: long enough for a slow answer, useless soon after.
TOKEN_TTL_SECONDS = 300
# Rows a relation link follows when the related model has no field back (ids are looked up).
MAX_LINKED_IDS = 500
# A to-many relation's ids a row's form edits as a whole (`set`); a longer list is shown
# read-only there and edited from the other side or in the playground.
MAX_EDITABLE_IDS = 200
SEARCHABLE = frozenset({"String", "ID", "UUID"})


class DataApiError(Exception):
    """The service refused or could not be reached; `field_errors` name fields when the
    server's message does (a unique constraint, a bad value)."""

    def __init__(self, errors: list[str], field_errors: dict[str, list[str]] | None = None):
        self.errors = errors
        self.field_errors = field_errors or {}
        super().__init__("; ".join(errors + [m for ms in self.field_errors.values() for m in ms]))


# --- the datamodel as the browser sees it ---------------------------------------------------


def schema_of(service: Service) -> Schema:
    """The deployed datamodel; an empty schema when nothing (or nothing readable) is deployed."""
    if not service.datamodel:
        return Schema()
    result = parse_datamodel(service.datamodel)
    return result.schema if result.ok and result.schema is not None else Schema()


def model_of(schema: Schema, name: str) -> Model:
    model = schema.model(name)
    if model is None:
        raise Http404("No such model")
    return model


def scalars(model: Model) -> list[Field]:
    return [f for f in model.fields if f.kind != "relation"]


def sortable(model: Model) -> list[Field]:
    return [f for f in scalars(model) if not f.is_list]


def searchable(model: Model) -> list[Field]:
    return [f for f in sortable(model) if f.kind == "scalar" and f.type_name in SEARCHABLE]


def filterable(model: Model) -> list[Field]:
    """Fields a field/value filter can name (Prisma has no filters on Json)."""
    return [f for f in sortable(model) if f.type_name != "Json"]


def back_field(schema: Schema, model: Model, relation_field: Field) -> Field | None:
    """The field on the related model that points back along the same relation."""
    relation = schema.relation(relation_field.relation_name or "")
    related = schema.model(relation_field.type_name)
    if relation is None or related is None:
        return None
    if relation.model_a == model.name and relation.field_a == relation_field.name:
        name = relation.field_b
    else:
        name = relation.field_a
    return related.field(name) if name else None


def _ref(schema: Schema, f: Field) -> str:
    """A relation's selection: the related rows' ids, as `id` whatever the id field's name."""
    related = schema.model(f.type_name)
    name = related.id_field.name if related else "id"
    return f"{f.name} {{ id: {name} }}" if name != "id" else f"{f.name} {{ id }}"


def _selection(schema: Schema, model: Model, *, to_many: bool = False) -> str:
    """Scalars and to-one ids; with `to_many`, also up to MAX_EDITABLE_IDS + 1 ids of each
    to-many relation (one more tells the form the list is too long to edit whole)."""
    parts = [f.name for f in scalars(model)]
    for f in model.fields:
        if f.kind == "relation" and not f.is_list:
            parts.append(_ref(schema, f))
        elif f.kind == "relation" and to_many:
            parts.append(_ref(schema, f).replace(" {", f"(first: {MAX_EDITABLE_IDS + 1}) {{", 1))
    return " ".join(parts)


def _names(model: Model) -> dict[str, str]:
    many = camel_case(plural(model.name))
    return {"one": camel_case(model.name), "many": many, "connection": many + "Connection"}


# --- calls -----------------------------------------------------------------------------------


def _client(service: Service) -> ManagementClient:
    token = service_token(service, ttl=TOKEN_TTL_SECONDS) if service.secret else None
    return service.data_client(token)


_UNIQUE = re.compile(r"A unique constraint would be violated on \w+\. Details: Field name = (\w+)")
_REASON = re.compile(r"Reason: '(\w+)'")


def _call(service: Service, model: Model, query: str, variables: dict[str, Any]) -> dict:
    try:
        return _client(service).call(query, variables)
    except ServerUnreachable as error:
        raise DataApiError([f"The service could not be reached: {error}"]) from None
    except PrismaError as error:
        raise _explained(model, error) from None


def _explained(model: Model, error: PrismaError) -> DataApiError:
    """The server's errors, on the fields they name where they name one."""
    known = {f.name for f in model.fields}
    general: list[str] = []
    on_fields: dict[str, list[str]] = {}
    for item in error.errors:
        message = str(item.get("message", "unknown error"))
        code = item.get("code")
        shown = f"{message} (code {code})" if isinstance(code, int) else message
        match = _UNIQUE.search(message) or _REASON.search(message)
        if match and match.group(1) in known:
            name = match.group(1)
            if _UNIQUE.search(message):
                shown = f"Another {model.name} already has this {name} (code {code})."
            on_fields.setdefault(name, []).append(shown)
        else:
            general.append(shown)
    return DataApiError(general, on_fields)


# --- reading ---------------------------------------------------------------------------------


@dataclass
class Listing:
    """What the table shows: the rows of one page and how they were chosen."""

    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    where: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class ListParams:
    page: int = 1
    order: str = ""
    direction: str = "asc"
    search: str = ""
    field: str = ""
    value: str = ""
    via: str = ""  # "<Model>.<field>": the rows that field of row `of` points to
    of: str = ""

    @classmethod
    def from_query(cls, query: Any) -> ListParams:
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        direction = "desc" if query.get("dir") == "desc" else "asc"
        return cls(
            page=page,
            order=query.get("order", ""),
            direction=direction,
            search=query.get("q", "").strip(),
            field=query.get("field", ""),
            value=query.get("value", ""),
            via=query.get("via", ""),
            of=query.get("of", "").strip(),
        )


def _where(
    service: Service, schema: Schema, model: Model, params: ListParams
) -> tuple[dict[str, Any], list[str]]:
    """The `WhereInput` of the page's filters, and what was wrong with them."""
    parts: list[dict[str, Any]] = []
    errors: list[str] = []
    if params.search:
        terms = [{f"{f.name}_contains": params.search} for f in searchable(model)]
        if model.id_field.type_name == "ID":
            terms.append({model.id_field.name: params.search})
        parts.append({"OR": terms} if terms else {f"{model.id_field.name}_in": []})
    if params.field:
        chosen = next((f for f in filterable(model) if f.name == params.field), None)
        if chosen is None:
            errors.append(f"{model.name} has no field {params.field} to filter on.")
        elif params.value == "" and not chosen.is_required:
            parts.append({chosen.name: None})
        else:
            try:
                parts.append({chosen.name: coerce(chosen, params.value)})
            except ValueError as error:
                errors.append(f"{chosen.name}: {error}")
    if params.via and params.of:
        linked = _linked(service, schema, model, params, errors)
        if linked is not None:
            parts.append(linked)
    if not parts:
        return {}, errors
    return (parts[0] if len(parts) == 1 else {"AND": parts}), errors


def _linked(
    service: Service, schema: Schema, model: Model, params: ListParams, errors: list[str]
) -> dict[str, Any] | None:
    """The rows that `via` (`Owner.field`) of the row `of` points to, through the field back
    when the related model has one, else by looking the ids up."""
    owner_name, _, field_name = params.via.partition(".")
    owner = schema.model(owner_name)
    through = owner.field(field_name) if owner else None
    if owner is None or through is None or through.type_name != model.name:
        errors.append(f"{params.via} does not lead to {model.name}.")
        return None
    try:
        owner_id = coerce(owner.id_field, params.of)
    except ValueError as error:
        errors.append(f"{owner.name} id: {error}")
        return None
    back = back_field(schema, owner, through)
    if back is not None:
        key = f"{back.name}_some" if back.is_list else back.name
        return {key: {owner.id_field.name: owner_id}}
    names = _names(owner)
    many = f"(first: {MAX_LINKED_IDS})" if through.is_list else ""
    selection = _ref(schema, through).replace(" {", many + " {", 1)
    query = (
        f"query($id: {owner.id_field.type_name}!) {{ row: {names['one']}"
        f"(where: {{{owner.id_field.name}: $id}}) {{ {selection} }} }}"
    )
    try:
        data = _call(service, owner, query, {"id": owner_id})
    except DataApiError as error:
        errors.extend(error.errors)
        return None
    linked = (data.get("row") or {}).get(through.name)
    items = linked if isinstance(linked, list) else [linked] if linked else []
    return {f"{model.id_field.name}_in": [item["id"] for item in items]}


def list_rows(service: Service, schema: Schema, model: Model, params: ListParams) -> Listing:
    where, errors = _where(service, schema, model, params)
    if errors:
        return Listing([], 0, 1, 1, where, errors)
    order = next((f.name for f in sortable(model) if f.name == params.order), None)
    names = _names(model)
    query = (
        f"query($where: {model.name}WhereInput, $orderBy: {model.name}OrderByInput, "
        f"$first: Int, $skip: Int) {{\n"
        f"  rows: {names['many']}(where: $where, orderBy: $orderBy, first: $first, "
        f"skip: $skip) {{ {_selection(schema, model)} }}\n"
        f"  total: {names['connection']}(where: $where) {{ aggregate {{ count }} }}\n}}"
    )
    variables = {
        "where": where or None,
        "orderBy": f"{order}_{params.direction.upper()}" if order else None,
        "first": PAGE_SIZE,
        "skip": (params.page - 1) * PAGE_SIZE,
    }
    try:
        data = _call(service, model, query, variables)
    except DataApiError as error:
        return Listing([], 0, 1, 1, where, error.errors + _flat(error.field_errors))
    total = int(((data.get("total") or {}).get("aggregate") or {}).get("count") or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    return Listing(list(data.get("rows") or []), total, params.page, pages, where)


def _flat(field_errors: dict[str, list[str]]) -> list[str]:
    return [f"{name}: {m}" for name, messages in field_errors.items() for m in messages]


def get_row(service: Service, schema: Schema, model: Model, row_id: str) -> dict[str, Any]:
    """One row with every field (to-many relations as their ids), or 404."""
    try:
        key = coerce(model.id_field, row_id)
    except ValueError:
        raise Http404("No such row") from None
    selection = _selection(schema, model, to_many=True)
    query = (
        f"query($id: {model.id_field.type_name}!) {{ row: {_names(model)['one']}"
        f"(where: {{{model.id_field.name}: $id}}) {{ {selection} }} }}"
    )
    row = _call(service, model, query, {"id": key}).get("row")
    if not row:
        raise Http404("No such row")
    return row


# --- writing ---------------------------------------------------------------------------------


def coerce(f: Field, text: str) -> Any:
    """A typed value for a scalar field from what a person typed (ValueError if it is none)."""
    import json
    from datetime import datetime

    text = text.strip() if f.type_name != "String" else text
    kind = f.type_name
    if kind == "Int":
        try:
            return int(text)
        except ValueError:
            raise ValueError("enter a whole number") from None
    if kind == "Float":
        try:
            return float(text)
        except ValueError:
            raise ValueError("enter a number") from None
    if kind == "Boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError("enter true or false")
        return text.lower() == "true"
    if kind == "DateTime":
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("enter a date and time such as 2026-11-30T12:00:00Z") from None
        return text
    if kind == "Json":
        try:
            return json.loads(text)
        except ValueError as error:
            raise ValueError(f"not JSON: {error}") from None
    return text


def _member(user: User, service: Service) -> None:
    """Members browse and edit (every role has the member's rights); strangers get 404."""
    membership = get_membership(user, service.server.workspace.slug)
    if not membership.has_role(Role.MEMBER):
        raise Http404("No such service")


def _audit(
    action: AuditAction,
    user: User,
    service: Service,
    model: Model,
    row_id: object,
    request: HttpRequest | None,
    **extra: object,
) -> None:
    audit_service(action, user, service, request, model=model.name, row=str(row_id), **extra)


def create_row(
    user: User,
    service: Service,
    model: Model,
    data: dict[str, Any],
    *,
    request: HttpRequest | None = None,
) -> str:
    """A new row; its id. The server's refusal raises `DataApiError`."""
    _member(user, service)
    query = (
        f"mutation($data: {model.name}CreateInput!) {{ row: create{model.name}(data: $data) "
        f"{{ {model.id_field.name} }} }}"
    )
    row = _call(service, model, query, {"data": data})["row"]
    row_id = row[model.id_field.name]
    _audit(AuditAction.DATA_ROW_CREATED, user, service, model, row_id, request, fields=sorted(data))
    return str(row_id)


def update_row(
    user: User,
    service: Service,
    model: Model,
    row_id: str,
    data: dict[str, Any],
    *,
    request: HttpRequest | None = None,
) -> None:
    _member(user, service)
    if not data:
        return
    query = (
        f"mutation($id: {model.id_field.type_name}!, $data: {model.name}UpdateInput!) {{ "
        f"row: update{model.name}(where: {{{model.id_field.name}: $id}}, data: $data) "
        f"{{ {model.id_field.name} }} }}"
    )
    key = coerce(model.id_field, row_id)
    row = _call(service, model, query, {"id": key, "data": data}).get("row")
    if not row:
        raise Http404("No such row")
    _audit(AuditAction.DATA_ROW_UPDATED, user, service, model, row_id, request, fields=sorted(data))


def delete_row(
    user: User, service: Service, model: Model, row_id: str, *, request: HttpRequest | None = None
) -> None:
    _member(user, service)
    query = (
        f"mutation($id: {model.id_field.type_name}!) {{ row: delete{model.name}"
        f"(where: {{{model.id_field.name}: $id}}) {{ {model.id_field.name} }} }}"
    )
    try:
        key = coerce(model.id_field, row_id)
    except ValueError:
        raise Http404("No such row") from None
    row = _call(service, model, query, {"id": key}).get("row")
    if not row:
        raise Http404("No such row")
    _audit(AuditAction.DATA_ROW_DELETED, user, service, model, row_id, request)
