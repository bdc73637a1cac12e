"""The service page's playground and data browser, and `/go/admin` (the runtime's `_admin`
link): thin views over `servers.data_browser`. Every page resolves the service through the
caller's memberships, so a stranger gets 404 on each of them."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.views.workspaces import workspace_view
from runtime.datamodel.schema import Field, Model, Schema
from servers import data_browser
from servers.data_browser import DataApiError, ListParams
from servers.data_forms import RowForm, editable
from servers.deploys import service_token
from servers.models import Service, get_service

# The playground's token: a working session's length; the page mints a new one when reloaded.
PLAYGROUND_TOKEN_TTL = 3600


@workspace_view()
def playground(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    """GraphiQL on the service's endpoint as the browser reaches it, with a token minted for
    this member (none for a service without a secret)."""
    service = get_service(request.user, membership.workspace.slug, service_id)
    token = service_token(service, ttl=PLAYGROUND_TOKEN_TTL) if service.secret else ""
    config = {"endpoint": service.endpoint, "token": token}
    return render(
        request,
        "servers/playground.html",
        {
            "workspace": membership.workspace,
            "service": service,
            "config": config,
            "token_minutes": PLAYGROUND_TOKEN_TTL // 60,
        },
    )


def _service_and_schema(
    request: HttpRequest, membership: Membership, service_id: str
) -> tuple[Service, Schema]:
    service = get_service(request.user, membership.workspace.slug, service_id)
    return service, data_browser.schema_of(service)


def _base_context(
    membership: Membership, service: Service, schema: Schema, model: Model | None
) -> dict[str, Any]:
    return {
        "workspace": membership.workspace,
        "service": service,
        "models": [m.name for m in schema.models],
        "model": model,
    }


def _url(service: Service, name: str, *args: object, query: dict[str, Any] | None = None) -> str:
    url = reverse(f"servers:{name}", args=[service.server.workspace.slug, service.id, *args])
    kept = {k: v for k, v in (query or {}).items() if v not in ("", None)}
    return f"{url}?{urlencode(kept)}" if kept else url


@workspace_view()
def data_index(request: HttpRequest, membership: Membership, service_id: str) -> HttpResponse:
    service, schema = _service_and_schema(request, membership, service_id)
    if schema.models:
        return redirect(_url(service, "data-rows", schema.models[0].name))
    return render(
        request, "servers/data_rows.html", _base_context(membership, service, schema, None)
    )


def _params_query(params: ListParams) -> dict[str, Any]:
    return {
        "q": params.search,
        "field": params.field,
        "value": params.value if params.field else "",
        "order": params.order,
        "dir": params.direction if params.order else "",
        "via": params.via,
        "of": params.of,
    }


def _cell(service: Service, schema: Schema, model: Model, f: Field, row: dict[str, Any]) -> dict:
    value = row.get(f.name)
    if f.kind == "relation":
        if f.is_list:
            query = {"via": f"{model.name}.{f.name}", "of": row.get(model.id_field.name)}
            url = _url(service, "data-rows", f.type_name, query=query)
            return {"text": f"{f.type_name} rows →", "url": url}
        if not value:
            return {"text": None}
        return {"text": value["id"], "url": _url(service, "data-row", f.type_name, value["id"])}
    if value is None:
        return {"text": None}
    if f.type_name == "Json":
        text = json.dumps(value)
    elif f.is_list:
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
    return {"text": text if len(text) <= 80 else text[:79] + "…", "title": text}


@workspace_view()
def data_rows(
    request: HttpRequest, membership: Membership, service_id: str, model_name: str
) -> HttpResponse:
    """A model's rows: a page at a time, sorted by any scalar field, filtered by the search box
    (its String fields, `_contains`, or its id), a field/value pair, or a relation."""
    service, schema = _service_and_schema(request, membership, service_id)
    model = data_browser.model_of(schema, model_name)
    params = ListParams.from_query(request.GET)
    listing = data_browser.list_rows(service, schema, model, params)
    query = _params_query(params)
    columns = []
    for f in model.fields:
        sortable = f.kind != "relation" and not f.is_list
        sorted_as = params.direction if sortable and params.order == f.name else None
        flip = "desc" if sorted_as == "asc" else "asc"
        sort_query = {**query, "order": f.name, "dir": flip, "page": ""}
        columns.append(
            {
                "name": f.name,
                "sorted": sorted_as,
                "url": _url(service, "data-rows", model.name, query=sort_query) if sortable else "",
            }
        )
    rows = [
        {
            "id": row.get(model.id_field.name),
            "url": _url(service, "data-row", model.name, row.get(model.id_field.name)),
            "cells": [_cell(service, schema, model, f, row) for f in model.fields],
        }
        for row in listing.rows
    ]

    def page_url(page: int) -> str:
        return _url(service, "data-rows", model.name, query={**query, "page": page})

    via_label = ""
    if params.via and params.of:
        via_label = f"{params.via} of {params.of}"
    return render(
        request,
        "servers/data_rows.html",
        {
            **_base_context(membership, service, schema, model),
            "listing": listing,
            "params": params,
            "columns": columns,
            "rows": rows,
            "filterable": [f.name for f in data_browser.filterable(model)],
            "searchable": [f.name for f in data_browser.searchable(model)],
            "via_label": via_label,
            "clear_via_url": _url(
                service, "data-rows", model.name, query={**query, "via": "", "of": ""}
            ),
            "previous_url": page_url(listing.page - 1) if listing.page > 1 else "",
            "next_url": page_url(listing.page + 1) if listing.page < listing.pages else "",
        },
        status=200 if not listing.errors else 400,
    )


def _render_row(
    request: HttpRequest,
    membership: Membership,
    service: Service,
    schema: Schema,
    model: Model,
    form: RowForm,
    row_id: str = "",
    status: int = 200,
) -> HttpResponse:
    row = form.row or {}
    fixed = [
        {"name": f.name, "value": row.get(f.name)}
        for f in model.fields
        if f not in editable(model) and row_id
    ]
    links = []
    if row_id:
        for f in model.fields:
            if f.kind == "relation" and f.is_list:
                query = {"via": f"{model.name}.{f.name}", "of": row_id}
                links.append((f.name, _url(service, "data-rows", f.type_name, query=query)))
            elif f.kind == "relation" and row.get(f.name):
                links.append((f.name, _url(service, "data-row", f.type_name, row[f.name]["id"])))
    return render(
        request,
        "servers/data_row.html",
        {
            **_base_context(membership, service, schema, model),
            "form": form,
            "row_id": row_id,
            "fixed": fixed,
            "links": links,
            "list_url": _url(service, "data-rows", model.name),
        },
        status=status,
    )


@workspace_view()
def data_new(
    request: HttpRequest, membership: Membership, service_id: str, model_name: str
) -> HttpResponse:
    service, schema = _service_and_schema(request, membership, service_id)
    model = data_browser.model_of(schema, model_name)
    if request.method != "POST":
        form = RowForm(schema, model)
        return _render_row(request, membership, service, schema, model, form)
    form = RowForm(schema, model, request.POST)
    if form.is_valid():
        try:
            row_id = data_browser.create_row(
                request.user, service, model, form.graphql_data, request=request
            )
        except DataApiError as error:
            form.apply_server_errors(error.errors, error.field_errors)
        else:
            messages.success(request, f"Created {model.name} {row_id}.")
            return redirect(_url(service, "data-row", model.name, row_id))
    return _render_row(request, membership, service, schema, model, form, status=400)


@workspace_view()
def data_row(
    request: HttpRequest, membership: Membership, service_id: str, model_name: str, row_id: str
) -> HttpResponse:
    """A row's form: its values, changed and saved (only the changed fields are sent)."""
    service, schema = _service_and_schema(request, membership, service_id)
    model = data_browser.model_of(schema, model_name)
    try:
        row = data_browser.get_row(service, schema, model, row_id)
    except DataApiError as error:
        for message in error.errors:
            messages.error(request, message)
        return redirect(_url(service, "data-rows", model.name))
    if request.method != "POST":
        form = RowForm(schema, model, row=row)
        return _render_row(request, membership, service, schema, model, form, row_id)
    form = RowForm(schema, model, request.POST, row=row)
    if form.is_valid():
        try:
            data_browser.update_row(
                request.user, service, model, row_id, form.graphql_data, request=request
            )
        except DataApiError as error:
            form.apply_server_errors(error.errors, error.field_errors)
        else:
            changed = ", ".join(sorted(form.graphql_data)) or "nothing changed"
            messages.success(request, f"Saved {model.name} {row_id} ({changed}).")
            return redirect(_url(service, "data-row", model.name, row_id))
    return _render_row(request, membership, service, schema, model, form, row_id, status=400)


@workspace_view()
@require_POST
def data_delete(
    request: HttpRequest, membership: Membership, service_id: str, model_name: str, row_id: str
) -> HttpResponse:
    service, schema = _service_and_schema(request, membership, service_id)
    model = data_browser.model_of(schema, model_name)
    try:
        data_browser.delete_row(request.user, service, model, row_id, request=request)
    except DataApiError as error:
        for message in error.errors + [m for ms in error.field_errors.values() for m in ms]:
            messages.error(request, f"Not deleted: {message}")
        return redirect(_url(service, "data-row", model.name, row_id))
    messages.success(request, f"Deleted {model.name} {row_id}.")
    return redirect(_url(service, "data-rows", model.name))


def _normalized(endpoint: str) -> str:
    parts = urlsplit(endpoint.strip())
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


@login_required
def go_admin(request: HttpRequest) -> HttpResponse:
    """Where a runtime's `<endpoint>/_admin` sends a browser (its `consoleUrl`): the data
    browser of the caller's service at that endpoint; 404 for anyone else's or none."""
    wanted = _normalized(request.GET.get("endpoint", ""))
    if not wanted.startswith(("http://", "https://")):
        raise Http404("No such service")
    candidates = {wanted}
    if wanted.count("/") == 3:  # `<origin>/<service>`: Prisma's default stage
        candidates.add(wanted + "/default")
    services = Service.objects.for_user(request.user).select_related("server__workspace")
    for service in services.exclude(status=Service.Status.DELETING):
        if _normalized(service.endpoint) in candidates:
            return redirect(_url(service, "data"))
    raise Http404("No such service")
