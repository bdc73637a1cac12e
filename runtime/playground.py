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

import html
import json
from pathlib import Path
from urllib.parse import quote

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


def default_assets() -> Path:
    """The repository's copy, beside the `runtime` package (the Docker image copies `static/`
    next to it in /app)."""
    return Path(__file__).resolve().parent.parent / "static" / "vendor" / "graphiql"


def wants_html(headers: dict[str, str]) -> bool:
    return "text/html" in headers.get("accept", "")


def is_asset_path(path: str) -> bool:
    return path.startswith(ASSET_PREFIX)


def is_admin_path(path: str) -> bool:
    return path.rstrip("/").endswith(ADMIN_SUFFIX)


class Playground:
    """The pages and their assets; files are read once, on first use."""

    def __init__(self, assets: Path | None, console_url: str | None) -> None:
        self.assets = assets or default_assets()
        self.console_url = console_url
        self._cache: dict[str, bytes] = {}

    def asset(self, path: str) -> tuple[bytes, str] | None:
        name = path[len(ASSET_PREFIX) :]
        content_type = ASSET_TYPES.get(name)
        if content_type is None:
            return None
        if name not in self._cache:
            try:
                self._cache[name] = (self.assets / name).read_bytes()
            except OSError:
                return None
        return self._cache[name], content_type

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
