"""How the console tells a service's history: migration steps in words, and what a deploy changed
in the datamodel. Pure functions and one read-only query; nothing here writes.

Prisma Cloud's deploy log listed raw step objects and said "applied" for a deploy that did
nothing (prisma1#4355); here every step reads as a sentence and a deploy's diff is taken against
the datamodel that was really live before it (the previous successful deploy), not the one the
user last typed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from servers.models import Deploy


def describe_step(step: dict[str, Any]) -> str:
    """One migration step as the server reported it (`servers.management_api._STEP_SELECTION`),
    in words: "Create model Post", "Create field title on Post", "Rename model A to B"."""
    kind = str(step.get("type") or step.get("__typename") or "")
    name = str(step.get("name") or "")
    model = str(step.get("model") or "")
    new_name = step.get("um_newName") or step.get("newName")
    if kind in ("CreateModel", "DeleteModel"):
        return f"{kind[:6]} model {name}"
    if kind == "UpdateModel":
        return f"Rename model {name} to {new_name}" if new_name else f"Update model {name}"
    if kind in ("CreateField", "DeleteField"):
        return f"{kind[:6]} field {name} on {model}"
    if kind == "UpdateField":
        if new_name and new_name != name:
            return f"Rename field {name} on {model} to {new_name}"
        return f"Update field {name} on {model}"
    if kind == "CreateEnum":
        values = step.get("ce_values") or step.get("values") or []
        return (
            f"Create enum {name} ({', '.join(map(str, values))})"
            if values
            else f"Create enum {name}"
        )
    if kind == "DeleteEnum":
        return f"Delete enum {name}"
    if kind == "UpdateEnum":
        return f"Rename enum {name} to {new_name}" if new_name else f"Update enum {name}"
    if kind == "CreateRelation":
        left, right = step.get("leftModel"), step.get("rightModel")
        return (
            f"Create relation {name} between {left} and {right}"
            if left
            else f"Create relation {name}"
        )
    if kind in ("DeleteRelation", "UpdateRelation"):
        return f"{kind[:6]} relation {name}"
    if kind == "UpdateSecrets":
        return str(step.get("message") or "Update secrets")
    return " ".join(part for part in (kind or "Step", name, model and f"on {model}") if part)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "del", "hunk", "file" or "same": the page colours by it
    text: str


def previous_success(deploy: Deploy) -> Deploy | None:
    """The deploy that was live before this one: the service's latest successful real deploy
    (dry runs change nothing) requested earlier."""
    return (
        Deploy.objects.filter(
            service_id=deploy.service_id,
            status=Deploy.Status.SUCCEEDED,
            dry_run=False,
            created_at__lt=deploy.created_at,
        )
        .exclude(id=deploy.id)
        .order_by("-created_at")
        .first()
    )


def datamodel_diff(before: str, after: str, before_name: str, after_name: str) -> list[DiffLine]:
    """A unified diff of two datamodels, each line tagged for colouring; empty when equal."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), before_name, after_name, lineterm=""
    )
    tagged = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        tagged.append(DiffLine(kind, line))
    return tagged
