"""`refract`: Refract's command-line client (login, servers, deploy, info, token, delete, init).

It talks to the console's REST API (`/api/v1/`) and, for servers of the local registry
(`~/.prisma/config.yml`), to their management APIs directly with tokens it signs itself. It
never imports the control plane: it is a package of its own, installable with pipx.
"""

__version__ = "0.1.0"
