"""The data browser's row form, generated from a model of the deployed datamodel.

Every input is text as typed (numbers, dates, JSON, ids): the form keeps exactly what the person
typed when the server refuses it, and turns it into GraphQL input (`data`) only when it is valid.
Required fields are required, enums are choices, scalar lists and to-many relations take one
value (or id) per line; relations are picked by id (`connect`; emptied: `disconnect`, or `set`
for a to-many relation). An edit sends only the fields that changed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import forms

from runtime.datamodel.schema import Field, Model, Schema
from servers.data_browser import MAX_EDITABLE_IDS, coerce

READ_ONLY_BEHAVIOURS = frozenset({"createdAt", "updatedAt"})


def editable(model: Model) -> list[Field]:
    """What a person sets: not the id, not the dates the server keeps."""
    return [f for f in model.fields if not f.is_id and f.behaviour not in READ_ONLY_BEHAVIOURS]


def as_text(f: Field, value: Any) -> str:
    """A stored value as the form shows it."""
    if value is None:
        return ""
    if f.kind == "relation":
        if f.is_list:
            return "\n".join(str(item["id"]) for item in value)
        return str(value["id"])
    if f.is_list:
        return "\n".join(_scalar_text(f, item) for item in value)
    return _scalar_text(f, value)


def _scalar_text(f: Field, value: Any) -> str:
    if f.type_name == "Json":
        return json.dumps(value)
    if f.type_name == "Boolean":
        return "true" if value else "false"
    return str(value)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


class RowForm(forms.Form):
    """A row of `model`: created (`row` None) or edited."""

    def __init__(
        self,
        schema: Schema,
        model: Model,
        data: Any = None,
        *,
        row: dict[str, Any] | None = None,
    ) -> None:
        self.schema = schema
        self.model = model
        self.row = row
        initial = {f.name: as_text(f, row.get(f.name)) for f in editable(model)} if row else {}
        super().__init__(data, initial=initial)
        for f in editable(model):
            self.fields[f.name] = self._field(f)
        self.graphql_data: dict[str, Any] = {}

    @property
    def is_new(self) -> bool:
        return self.row is None

    def _required(self, f: Field) -> bool:
        return f.is_required and not f.is_list and f.default is None

    def _field(self, f: Field) -> forms.Field:
        required = self._required(f)
        label = f.name
        if f.kind == "relation":
            target = f"{f.type_name} id" + ("s, one per line" if f.is_list else "")
            widget = forms.Textarea(attrs={"rows": 3}) if f.is_list else forms.TextInput()
            too_many = f.is_list and len((self.row or {}).get(f.name) or ()) > MAX_EDITABLE_IDS
            if too_many:  # saving a partial list as `set` would disconnect the rest
                target = (
                    f"more than {MAX_EDITABLE_IDS} {f.type_name} rows: too many to edit here; "
                    "change them from the other side"
                )
            return forms.CharField(
                label=label, required=required, help_text=target, widget=widget, strip=False,
                disabled=too_many,
            )  # fmt: skip
        if f.is_list:
            return forms.CharField(
                label=label,
                required=False,
                help_text=f"{f.type_name} values, one per line",
                widget=forms.Textarea(attrs={"rows": 3}),
                strip=False,
            )
        if f.kind == "enum":
            enum = self.schema.enum(f.type_name)
            values = [(v, v) for v in (enum.values if enum else ())]
            return forms.ChoiceField(
                label=label, required=required, choices=([] if required else [("", "(none)")])
                + values, help_text=f.type_name,
            )  # fmt: skip
        if f.type_name == "Boolean":
            choices = [("true", "true"), ("false", "false")]
            return forms.ChoiceField(
                label=label, required=required, help_text="Boolean",
                choices=choices if required else [("", "(none)"), *choices],
            )  # fmt: skip
        if f.type_name == "Json":
            return forms.CharField(
                label=label, required=required, help_text="JSON", strip=False,
                widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
            )  # fmt: skip
        placeholder = {"DateTime": "2026-11-30T12:00:00Z"}.get(f.type_name, "")
        return forms.CharField(
            label=label, required=required, help_text=f.type_name, strip=False,
            widget=forms.TextInput(attrs={"placeholder": placeholder} if placeholder else {}),
        )  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        data: dict[str, Any] = {}
        for f in editable(self.model):
            if f.name not in cleaned or f.name in self.errors:
                continue
            text = cleaned[f.name] or ""
            if not self.is_new and _same(f, text, self.initial.get(f.name, "")):
                continue
            try:
                value = self._value(f, text)
            except ValueError as error:
                self.add_error(f.name, str(error))
                continue
            if value is not _OMIT:
                data[f.name] = value
        self.graphql_data = data
        return cleaned

    def _value(self, f: Field, text: str) -> Any:
        if f.kind == "relation":
            return self._relation(f, text)
        if f.is_list:
            return {"set": [coerce(f, line) for line in _lines(text)]}
        if text.strip() == "" and not (f.type_name == "String" and text):
            if f.is_required:
                raise ValueError("This field is required.")
            return _OMIT if self.is_new else None  # emptied on an edit: null
        if f.kind == "enum":
            return text
        return coerce(f, text)

    def _relation(self, f: Field, text: str) -> Any:
        related = self.schema.model(f.type_name)
        if related is None:
            raise ValueError(f"{f.type_name} is not a model of this service")
        ids = [{related.id_field.name: coerce(related.id_field, line)} for line in _lines(text)]
        if f.is_list:
            if self.is_new:
                return {"connect": ids} if ids else _OMIT
            return {"set": ids}
        if len(ids) > 1:
            raise ValueError(f"one {f.type_name} id")
        if ids:
            return {"connect": ids[0]}
        if f.is_required:
            raise ValueError("This field is required.")
        return _OMIT if self.is_new else {"disconnect": True}

    def apply_server_errors(self, errors: list[str], field_errors: dict[str, list[str]]) -> None:
        """The server's refusal on the form (what was typed stays in the inputs)."""
        for name, messages in field_errors.items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
        for message in errors:
            self.add_error(None, message)


_OMIT = object()


def _same(f: Field, text: str, initial: str) -> bool:
    """Whether the input still says what the row holds (the server writes dates with
    milliseconds and JSON in its own spacing; the same value typed otherwise is no change)."""
    a, b = text.replace("\r\n", "\n").strip(), initial.replace("\r\n", "\n").strip()
    if a == b:
        return True
    if f.kind == "relation" or f.is_list:
        return _lines(a) == _lines(b)
    if f.type_name in ("DateTime", "Json") and a and b:
        try:
            return bool(coerce_value(f, a) == coerce_value(f, b))
        except ValueError:
            return False
    return False


def coerce_value(f: Field, text: str) -> Any:
    """A comparable value: an aware datetime for DateTime, the parsed document for Json."""
    if f.type_name == "DateTime":
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return coerce(f, text)
