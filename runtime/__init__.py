"""Refract's Prisma 1 server: a library with a small ASGI face.

The pure parts (datamodel parsing and validation, migration planning, SQL generation) live in
`runtime.datamodel` and `runtime.migrations` and never touch the network or a database, so they
can be tested directly. `runtime.app` is the HTTP face; `python -m runtime` runs it.

Nothing here imports the control plane (`cloud`, `accounts`, `servers`): the control plane talks
to this server only over HTTP, exactly as it talks to a real Prisma server.
"""

VERSION = "1.34.12"
"""The Prisma version reported by `serverInfo`; the CLI warns when the minor version differs."""
