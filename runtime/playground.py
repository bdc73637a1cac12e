"""What a browser gets from a service endpoint (reference section 0): the Prisma server answered
any `GET` with its Playground and `<endpoint>/_admin` with Prisma Admin.

Here a browser's `GET` (one that accepts `text/html`) gets GraphiQL for that endpoint, built from
the repository's one vendored copy (`static/vendor/graphiql/`, which the console serves too),
served under `/_static/graphiql/`: no service is named `_static` (a service name starts with a
letter), so the path never meets a service. Other clients keep the one-line page.

`<endpoint>/_admin`, the link `prisma1 deploy` prints as "Prisma Admin", sends the browser to the
console's data browser when the config names the console (`consoleUrl`; the console finds the
service by its endpoint and checks membership); a runtime without a console serves the
playground with a note, asking for the service token, since the data browser is part of the
console.

The pages read nothing from the tenant's database, so they cost a registered server no
connection.
"""

from __future__ import annotations

import asyncio
import gzip
import html
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from runtime import envelope

Send = Callable[[dict[str, Any]], Awaitable[None]]

ASSET_PREFIX = "/_static/graphiql/"
# The files the vendored directory holds (static/vendor/README.md), and only those are served.
ASSET_TYPES = {
    "graphiql.min.js": "text/javascript; charset=utf-8",
    "graphiql.min.css": "text/css; charset=utf-8",
    "react.production.min.js": "text/javascript; charset=utf-8",
    "react-dom.production.min.js": "text/javascript; charset=utf-8",
    "LICENSE.graphiql": "text/plain; charset=utf-8",
    "LICENSE.react": "text/plain; charset=utf-8",
    "LICENSE.react-dom": "text/plain; charset=utf-8",
}
ADMIN_SUFFIX = "/_admin"
# Paths that are not a service's endpoint: their GETs keep the runtime's one-line page.
NOT_ENDPOINTS = frozenset({"/status", "/management"})
SUFFIXES = frozenset({"private", "import", "export", "_datamodel"})


def default_assets() -> Path:
    """The repository's copy, beside the `runtime` package (the Docker image copies `static/`
    next to it in /app)."""
    return Path(__file__).resolve().parent.parent / "static" / "vendor" / "graphiql"


def takes_gzip(headers: dict[str, str]) -> bool:
    return "gzip" in headers.get("accept-encoding", "")


def wants_html(headers: dict[str, str]) -> bool:
    return "text/html" in headers.get("accept", "")


def is_asset_path(path: str) -> bool:
    return path.startswith(ASSET_PREFIX)


def is_admin_path(path: str) -> bool:
    return path.rstrip("/").endswith(ADMIN_SUFFIX)


def is_endpoint(path: str) -> bool:
    """`/`, `/<service>`, `/<service>/<stage>` or `/<workspace>/<service>/<stage>`."""
    segments = [s for s in path.split("/") if s]
    if path.rstrip("/") in NOT_ENDPOINTS or (segments and segments[-1] in SUFFIXES):
        return False
    return len(segments) <= 3


class Playground:
    """The pages and their assets; files are read once, on first use."""

    def __init__(self, assets: Path | None, console_url: str | None) -> None:
        self.assets = assets or default_assets()
        self.console_url = console_url
        self._cache: dict[str, bytes] = {}

    def asset(self, path: str, gzipped: bool) -> tuple[bytes, str] | None:
        """A vendored file, gzipped when the client takes it (GraphiQL is 3.5 MB, 0.7 MB
        gzipped). The first call per file reads and compresses it (about 0.1 s): callers run it
        off the event loop."""
        name = path[len(ASSET_PREFIX) :]
        content_type = ASSET_TYPES.get(name)
        if content_type is None:
            return None
        key = name + (".gz" if gzipped else "")
        if key not in self._cache:
            try:
                content = (self.assets / name).read_bytes()
            except OSError:
                return None
            self._cache[name] = content
            self._cache[name + ".gz"] = gzip.compress(content, compresslevel=6, mtime=0)
        return self._cache[key], content_type

    async def serve_asset(
        self, path: str, headers: dict[str, str], send: Send, request_id: str
    ) -> None:
        """A vendored file, read off the event loop (the first time, it is compressed)."""
        gzipped = takes_gzip(headers)
        found = await asyncio.to_thread(self.asset, path, gzipped)
        if found is None:
            await envelope.respond_json(send, 404, envelope.message_only("Not found"), request_id)
            return
        extra = [(b"cache-control", b"public, max-age=86400"), (b"vary", b"accept-encoding")]
        if gzipped:
            extra.append((b"content-encoding", b"gzip"))
        await envelope.respond(send, 200, found[0], found[1], request_id, extra)

    async def serve_page(
        self,
        scope: dict[str, Any],
        path: str,
        headers: dict[str, str],
        send: Send,
        request_id: str,
    ) -> bool:
        """The playground for a browser's `GET` on an endpoint, and `<endpoint>/_admin`; False
        for any other `GET`, which the app answers as before."""
        admin = is_admin_path(path)
        endpoint = path.rstrip("/")[: -len(ADMIN_SUFFIX)] if admin else path
        if not is_endpoint(endpoint) or not (admin or wants_html(headers)):
            return False
        if admin:
            origin = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
            location = self.admin_location(origin + (endpoint.rstrip("/") or "/"))
            if location is not None:
                redirect = [(b"location", location.encode())]
                await envelope.respond(send, 302, b"", "text/plain", request_id, redirect)
                return True
        page = self.page(endpoint, admin=admin)
        await envelope.respond(send, 200, page, "text/html; charset=utf-8", request_id)
        return True

    def admin_location(self, endpoint_url: str) -> str | None:
        """The console's data browser for the endpoint, when this runtime knows its console."""
        if self.console_url is None:
            return None
        return f"{self.console_url}/go/admin?endpoint={quote(endpoint_url, safe='')}"

    def page(self, endpoint_path: str, *, admin: bool = False) -> bytes:
        """GraphiQL for the endpoint at `endpoint_path` (same origin), with a token box: a
        protected service answers only with `Authorization: Bearer <service token>`."""
        endpoint = endpoint_path.rstrip("/") or "/"
        note = (
            "<p class='note' data-testid='admin-note'>The data browser is part of the Refract "
            "console, and this server does not name one (<code>consoleUrl</code> in its "
            "config). Paste the service token (<code>prisma1 token</code>) and browse the data "
            "with queries here.</p>"
            if admin
            else ""
        )
        config = json.dumps({"endpoint": endpoint}).replace("<", "\\u003c")
        return PAGE.format(
            title=html.escape(endpoint),
            prefix=ASSET_PREFIX,
            note=note,
            config=config,
        ).encode()


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Playground {title}</title>
<link rel="stylesheet" href="{prefix}graphiql.min.css">
<style>
  html, body {{ height: 100%; margin: 0; font-family: system-ui, sans-serif; }}
  body {{ display: flex; flex-direction: column; }}
  header {{ display: flex; gap: .75rem; align-items: center; padding: .5rem .75rem;
           border-bottom: 1px solid #ddd; font-size: 14px; }}
  header input {{ flex: 1; font-family: monospace; padding: .25rem; }}
  .note {{ margin: 0; padding: .5rem .75rem; background: #fff8e1; font-size: 14px; }}
  #graphiql {{ flex: 1; min-height: 0; }}
</style>
</head>
<body>
<header>
  <strong>{title}</strong>
  <label for="token">Service token</label>
  <input id="token" autocomplete="off" spellcheck="false"
         placeholder="only for services deployed with a secret">
</header>
{note}
<div id="graphiql">Loading the playground…</div>
<script src="{prefix}react.production.min.js"></script>
<script src="{prefix}react-dom.production.min.js"></script>
<script src="{prefix}graphiql.min.js"></script>
<script>
(function () {{
  var config = {config};
  var input = document.getElementById("token");
  var key = "refract-token:" + config.endpoint;
  input.value = sessionStorage.getItem(key) || "";
  function fetcher(params, options) {{
    var headers = Object.assign({{"Content-Type": "application/json"}},
                                (options && options.headers) || {{}});
    var token = input.value.trim();
    if (token && !headers.Authorization) headers.Authorization = "Bearer " + token;
    return fetch(config.endpoint, {{method: "POST", headers: headers,
                                   body: JSON.stringify(params)}})
      .then(function (answer) {{ return answer.json(); }});
  }}
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  var round = 0;
  function render() {{
    round += 1;  // a new key remounts GraphiQL, which introspects again with the new token
    root.render(React.createElement(GraphiQL, {{fetcher: fetcher, key: round}}));
  }}
  input.addEventListener("change", function () {{
    sessionStorage.setItem(key, input.value.trim());
    render();
  }});
  render();
}})();
</script>
</body>
</html>
"""
