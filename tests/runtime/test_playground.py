"""A browser on a service endpoint: the playground page, its assets, and `<endpoint>/_admin`
(`runtime.playground`), on a runtime without a console and on one that names it."""

from __future__ import annotations

import gzip
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from runtime.config import ConfigError, parse_config
from tests.runtime.conftest import Database, Runtime, management_token, run_runtime
from tests.runtime.management.test_management_api import add, deploy

pytestmark = [pytest.mark.multiprocess]

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SECRET = "a-service-secret-long-enough-for-hs256"
TYPES = "type Note {\n  id: ID! @id\n  text: String!\n}\n"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # urllib: None means "do not follow"
        return None


def get(url: str, accept: str = BROWSER, encoding: str = "") -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(NoRedirect)
    headers = {"Accept": accept, **({"Accept-Encoding": encoding} if encoding else {})}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture(scope="module")
def with_console(database: Database, tmp_path_factory) -> Iterator[Runtime]:
    config = {
        "managementApiSecret": "playground-secret",
        "consoleUrl": "http://console.example:3000/",
        "databases": {"default": database.prisma_config()},
    }
    with run_runtime(config, tmp_path_factory.mktemp("playground")) as running:
        yield running


def test_a_browser_gets_the_playground_and_every_asset_it_names_loads(runtime: Runtime) -> None:
    status, headers, body = get(runtime.url + "/blog/dev")
    assert status == 200 and headers["content-type"].startswith("text/html")
    page = body.decode()
    assert '"endpoint": "/blog/dev"' in page
    assets = re.findall(r'(?:src|href)="(/_static/graphiql/[^"]+)"', page)
    assert {Path(a).name for a in assets} == {
        "graphiql.min.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
    }
    vendored = Path(__file__).resolve().parents[2] / "static" / "vendor" / "graphiql"
    for asset in assets:
        status, headers, content = get(runtime.url + asset, accept="*/*")
        assert status == 200, asset
        assert content == (vendored / Path(asset).name).read_bytes()
        kind = "text/css" if asset.endswith(".css") else "text/javascript"
        assert headers["content-type"].startswith(kind)
        assert "content-encoding" not in headers
        # Browsers take it gzipped: a quarter of GraphiQL's 3.5 MB.
        status, headers, packed = get(runtime.url + asset, accept="*/*", encoding="gzip, br")
        assert headers["content-encoding"] == "gzip" and gzip.decompress(packed) == content
        assert len(packed) < len(content) * 0.7
    # The workspace form of a path is an endpoint too (sandboxes).
    assert '"endpoint": "/acme/blog/dev"' in get(runtime.url + "/acme/blog/dev")[2].decode()


def test_only_the_vendored_files_are_served(runtime: Runtime) -> None:
    for path in ("/_static/graphiql/../../../pyproject.toml", "/_static/graphiql/secret.txt"):
        assert get(runtime.url + path, accept="*/*")[0] == 404
    assert get(runtime.url + "/_static/graphiql/LICENSE.graphiql", accept="*/*")[0] == 200


def test_clients_that_are_not_browsers_keep_the_one_line_page(runtime: Runtime) -> None:
    status, _, body = get(runtime.url + "/blog/dev", accept="*/*")
    assert status == 200 and b"graphiql" not in body and b"POST GraphQL requests" in body
    assert get(runtime.url + "/status")[2] == b"OK"  # a browser on /status too
    assert b"graphiql" not in get(runtime.url + "/management")[2]
    for not_an_endpoint in ("/blog/dev/export", "/a/b/c/d"):
        assert b"graphiql" not in get(runtime.url + not_an_endpoint)[2]


def test_a_hostile_path_cannot_end_the_pages_script(runtime: Runtime) -> None:
    page = get(runtime.url + "/%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")[2]
    assert page.decode().count("</script>") == 4  # the page's own four scripts
    assert b"<script>alert" not in page


def test_admin_without_a_console_serves_the_playground_asking_for_the_token(
    runtime: Runtime,
) -> None:
    status, _, body = get(runtime.url + "/blog/dev/_admin")
    page = body.decode()
    assert status == 200
    assert 'data-testid="admin-note"' in page.replace("'", '"')
    assert '"endpoint": "/blog/dev"' in page and 'id="token"' in page


def test_admin_redirects_to_the_consoles_data_browser(with_console: Runtime) -> None:
    port = with_console.url.rsplit(":", 1)[1]
    status, headers, _ = get(with_console.url + "/acme/blog/dev/_admin")
    assert status == 302
    assert headers["location"] == (
        "http://console.example:3000/go/admin?endpoint="
        f"http%3A%2F%2F127.0.0.1%3A{port}%2Facme%2Fblog%2Fdev"
    )
    # Any client following the link, browser or not; the playground stays on the runtime.
    assert get(with_console.url + "/blog/dev/_admin/", accept="*/*")[0] == 302
    assert get(with_console.url + "/blog/dev")[0] == 200


@pytest.mark.browser
def test_the_playground_queries_a_protected_service_with_the_token_typed(
    runtime: Runtime, browser
) -> None:
    """In Chromium: the page's GraphiQL introspects with the pasted service token and runs a
    query; without the token the service refuses."""
    name = f"pg{secrets.token_hex(3)}"
    token = management_token()
    add(runtime, token, name, secrets=[SECRET])
    assert deploy(runtime, token, name, TYPES, secrets=[SECRET])["errors"] == []
    service_token = jwt.encode(
        {"data": {"service": f"{name}@dev", "roles": ["admin"]}}, SECRET, algorithm="HS256"
    )
    created = runtime.post(
        f"/{name}/dev", {"query": 'mutation { createNote(data: {text: "hello"}) { id } }'},
        token=service_token,
    )  # fmt: skip
    assert "errors" not in created.body, created.body
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{runtime.url}/{name}/dev")
        page.locator(".graphiql-container").wait_for(timeout=20_000)
        page.fill("#token", service_token)
        page.press("#token", "Tab")  # `change`: GraphiQL remounts with the token
        editor = page.locator(".graphiql-query-editor .CodeMirror").first
        editor.wait_for()
        page.evaluate(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
            ".setValue('{ notes { text } }')"
        )
        page.locator(".graphiql-execute-button").click()
        result = page.locator(".graphiql-response")
        result.get_by_text('"hello"').wait_for(timeout=20_000)
        # Without a token the service says so, in the result pane.
        page.fill("#token", "")
        page.press("#token", "Tab")
        page.evaluate(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror"
            ".setValue('{ notes { text } }')"
        )
        page.locator(".graphiql-execute-button").click()
        result.get_by_text("3015").wait_for(timeout=20_000)
    finally:
        context.close()


def test_console_url_and_assets_are_checked_at_start(tmp_path: Path) -> None:
    base = {"databases": {"default": {"connector": "postgres", "host": "h", "database": "d"}}}
    assert parse_config({**base, "consoleUrl": "https://c.example/"}, {}).console_url == (
        "https://c.example"
    )
    for bad in ("ftp://c.example", "c.example", "https://c.example/?x=1"):
        with pytest.raises(ConfigError, match="consoleUrl"):
            parse_config({**base, "consoleUrl": bad}, {})
    with pytest.raises(ConfigError, match="playgroundAssets"):
        parse_config({**base, "playgroundAssets": str(tmp_path / "missing")}, {})
    assert parse_config({**base, "playgroundAssets": str(tmp_path)}, {}).playground_assets == (
        tmp_path
    )
