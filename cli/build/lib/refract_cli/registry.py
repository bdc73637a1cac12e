"""The local registry, `~/.prisma/config.yml`, shared with the Prisma 1 CLI (protocol
reference 4.1): `cloudSessionKey` (the console session key) and `clusters`, a map of
`name -> {host, clusterSecret}` where `clusterSecret` is a PEM private key, a path to one, or
a management API secret.

The file is edited round-trip (ruamel.yaml), so keys we do not know, and the user's comments,
stay as they were; the Prisma CLI reads it as before. Our one addition is `refractConsole`,
the console's address, which the Prisma CLI ignores.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import LiteralScalarString

from refract_cli.errors import CliError

ENV_REFERENCE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def prisma_home() -> Path:
    return Path.home() / ".prisma"


def registry_path() -> Path:
    return prisma_home() / "config.yml"


def keys_dir() -> Path:
    return prisma_home() / "keys"


def interpolate(value: str) -> str:
    """`${env:VAR}` as the Prisma CLI reads this file; an unset variable is an empty string."""
    return ENV_REFERENCE.sub(lambda m: os.environ.get(m.group(1), ""), value)


def _yaml() -> YAML:
    yaml = YAML()  # round-trip
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a key or a URL
    return yaml


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600), replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


@dataclass
class ClusterEntry:
    name: str
    host: str
    secret: str  # as written: a PEM key, a path to one, a management secret, or empty


class Registry:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or registry_path()
        self.data: CommentedMap = CommentedMap()
        if self.path.exists():
            try:
                loaded = _yaml().load(self.path.read_text(encoding="utf-8"))
            except Exception as error:  # ruamel's errors have no common public base
                raise CliError(
                    f"{self.path} is not valid YAML: {error}",
                    hint="Fix or remove the file (refract login writes a new one).",
                ) from None
            if loaded is not None:
                if not isinstance(loaded, CommentedMap):
                    raise CliError(f"{self.path} must hold a YAML mapping.")
                self.data = loaded

    # --- the session key and the console --------------------------------------------------

    @property
    def session_key(self) -> str:
        value = self.data.get("cloudSessionKey")
        return interpolate(str(value)).strip() if value else ""

    @session_key.setter
    def session_key(self, key: str) -> None:
        if key:
            self.data["cloudSessionKey"] = key
        else:
            self.data.pop("cloudSessionKey", None)

    @property
    def console(self) -> str:
        value = self.data.get("refractConsole")
        return str(value).strip() if value else ""

    @console.setter
    def console(self, url: str) -> None:
        self.data["refractConsole"] = url

    # --- clusters ---------------------------------------------------------------------------

    def _clusters(self) -> CommentedMap:
        clusters = self.data.get("clusters")
        if not isinstance(clusters, dict):
            clusters = CommentedMap()
            self.data["clusters"] = clusters
        return clusters

    def clusters(self) -> list[ClusterEntry]:
        found = []
        for name, entry in (self.data.get("clusters") or {}).items():
            if not isinstance(entry, dict) or not entry.get("host"):
                continue
            found.append(
                ClusterEntry(
                    name=str(name),
                    host=interpolate(str(entry["host"])).rstrip("/"),
                    secret=interpolate(str(entry.get("clusterSecret") or "")),
                )
            )
        return found

    def cluster(self, name: str) -> ClusterEntry | None:
        return next((entry for entry in self.clusters() if entry.name == name), None)

    def add_cluster(self, name: str, host: str, secret: str) -> None:
        entry = CommentedMap()
        entry["host"] = host
        entry["clusterSecret"] = LiteralScalarString(secret) if "\n" in secret else secret
        self._clusters()[name] = entry

    def remove_cluster(self, name: str) -> bool:
        clusters = self._clusters()
        if name not in clusters:
            return False
        del clusters[name]
        return True

    # --- saving -----------------------------------------------------------------------------

    def save(self) -> None:
        """Written as the Prisma CLI writes it (a `clusters` map always present), readable
        only by its owner: it holds the session key and maybe private keys."""
        self._clusters()
        buffer = StringIO()
        _yaml().dump(self.data, buffer)
        write_private(self.path, buffer.getvalue())
