"""`prisma.yml`: both of its forms, the brief's (`service`, `stage`, `cluster`) and Prisma's
later `endpoint:`, plus `datamodel` (a file or a list of files) and `secret`.

The file is read and written round-trip (ruamel.yaml): writing the chosen `cluster` back keeps
the user's comments, key order, quoting and indentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from refract_cli.errors import CliError
from refract_cli.registry import interpolate

DEFAULT_STAGE = "dev"
INDENTED_SEQUENCE = re.compile(r"^[A-Za-z_][\w-]*:\s*\n\s+- ", re.MULTILINE)


def _yaml(text: str) -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    if INDENTED_SEQUENCE.search(text):  # `datamodel:\n  - a.prisma` stays indented
        yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def find_project(given: str | None) -> Path:
    if given:
        path = Path(given)
        if not path.is_file():
            raise CliError(f"{path} does not exist.", code="no_prisma_yml")
        return path
    for candidate in (Path("prisma.yml"), Path("prisma") / "prisma.yml"):
        if candidate.is_file():
            return candidate
    raise CliError(
        "No prisma.yml here (nor prisma/prisma.yml).",
        hint="Run `refract init` to make one, or pass --project FILE.",
        code="no_prisma_yml",
    )


@dataclass(frozen=True)
class ParsedEndpoint:
    """An `endpoint:` URL as Prisma reads it (protocol reference 4.3)."""

    origin: str
    workspace: str | None
    service: str
    stage: str

    @property
    def service_origin(self) -> str:
        return f"{self.origin}/{self.workspace}" if self.workspace else self.origin


def parse_endpoint(endpoint: str) -> ParsedEndpoint:
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise CliError(
            f"endpoint {endpoint!r} in prisma.yml is not an http(s) URL.",
            hint="Write it as http://host:port/<service>/<stage>.",
        )
    path = parts.path.split("/")
    if len(path) > 4 or (len(path) == 4 and not path[3]):
        raise CliError(f"endpoint {endpoint!r} has too many path segments.")
    workspace = path[1] if len(path) > 3 else None
    service = (path[2] if len(path) > 3 else (path[1] if len(path) > 1 else "")) or "default"
    stage = (path[3] if len(path) > 3 else (path[2] if len(path) > 2 else "")) or "default"
    return ParsedEndpoint(f"{parts.scheme}://{parts.netloc}", workspace, service, stage)


class Project:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.text = path.read_text(encoding="utf-8")
        try:
            loaded = _yaml(self.text).load(self.text)
        except Exception as error:  # ruamel's errors have no common public base
            raise CliError(
                f"{path} is not valid YAML: {error}", code="invalid_prisma_yml"
            ) from None
        if loaded is None:
            loaded = CommentedMap()
        if not isinstance(loaded, CommentedMap):
            raise CliError(f"{path} must be a YAML mapping.", code="invalid_prisma_yml")
        self.doc = loaded

    def _text(self, key: str) -> str:
        value = self.doc.get(key)
        if value is None:
            return ""
        if not isinstance(value, str | int | float):
            raise CliError(f"`{key}` in {self.path} must be a string.", code="invalid_prisma_yml")
        return interpolate(str(value)).strip()

    @property
    def cluster(self) -> str:
        return self._text("cluster")

    @property
    def endpoint(self) -> str:
        return self._text("endpoint")

    @property
    def secret(self) -> str:
        return self._text("secret")

    @property
    def secrets(self) -> list[str] | None:
        found = [part.strip() for part in self.secret.split(",") if part.strip()]
        return found or None

    def service_stage(self) -> tuple[str, str]:
        """`service` and `stage` (default `dev`), or those of `endpoint`."""
        if self.endpoint and not self.doc.get("service"):
            parsed = parse_endpoint(self.endpoint)
            return parsed.service, parsed.stage
        service = self._text("service")
        if not service:
            raise CliError(
                f"{self.path} names no service.",
                hint="Set `service: <name>` (and `stage`, `dev` by default), or `endpoint:`.",
                code="no_service",
            )
        return service, self._text("stage") or DEFAULT_STAGE

    def datamodel(self) -> str:
        value = self.doc.get("datamodel")
        if not value:
            raise CliError(
                f"The property datamodel is missing in {self.path}.",
                hint="Set `datamodel: datamodel.prisma` (a file, or a list of files).",
                code="no_datamodel",
            )
        files = [value] if isinstance(value, str) else list(value)
        texts = []
        for name in files:
            file = self.path.parent / interpolate(str(name))
            try:
                texts.append(file.read_text(encoding="utf-8"))
            except OSError as error:
                raise CliError(
                    f"Cannot read the datamodel file {file}: {error.strerror}",
                    code="no_datamodel",
                ) from None
        return "\n".join(texts)

    def write_cluster(self, name: str) -> None:
        """Put `cluster: <name>` on the line after `stage` (or `service`), keeping every other
        byte: a line of text inserted where ruamel.yaml says the key is, since its dump would
        hand the comment block under `stage` to the new key. Checked by reading it back; a
        file where that does not hold (`cluster:` already there, flow style) is dumped
        round-trip instead."""
        text = self._inserted(name)
        if text is None or _yaml(text).load(text).get("cluster") != name:
            if "cluster" in self.doc:
                self.doc["cluster"] = name
            else:
                keys = list(self.doc.keys())
                anchor = next((k for k in ("stage", "service") if k in keys), None)
                position = keys.index(anchor) + 1 if anchor else len(keys)
                self.doc.insert(position, "cluster", name)
            buffer = StringIO()
            _yaml(self.text).dump(self.doc, buffer)
            text = buffer.getvalue()
        self.text = text
        self.path.write_text(text, encoding="utf-8")
        self.doc = _yaml(text).load(text)

    def _inserted(self, name: str) -> str | None:
        if "cluster" in self.doc or self.doc.fa.flow_style():
            return None
        lines = self.text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        anchor = next((k for k in ("stage", "service") if k in self.doc), None)
        if anchor is None:
            return "".join([*lines, f"cluster: {name}\n"])
        key_line, _ = self.doc.lc.key(anchor)
        value_line, _ = self.doc.lc.value(anchor)
        if key_line != value_line or not isinstance(self.doc[anchor], str | int | float):
            return None
        return "".join([*lines[: key_line + 1], f"cluster: {name}\n", *lines[key_line + 1 :]])
