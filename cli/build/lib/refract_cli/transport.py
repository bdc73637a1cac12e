"""The CLI's one way to send HTTP (stdlib only): JSON in, status and JSON out, and a
`Unreachable` for anything that is not an answer (refused, timed out, not JSON)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from refract_cli import __version__

USER_AGENT = f"refract-cli/{__version__}"
MAX_ANSWER_BYTES = 16 * 1024 * 1024


class Unreachable(Exception):
    pass


def request_json(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str = "",
    timeout: float = 30,
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            status, raw = answer.status, answer.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(MAX_ANSWER_BYTES)
    except TimeoutError:
        raise Unreachable(f"{url} did not answer within {timeout:g} s") from None
    except urllib.error.URLError as error:
        raise Unreachable(f"cannot connect to {url}: {error.reason}") from None
    except (OSError, ValueError) as error:
        raise Unreachable(f"cannot connect to {url}: {error}") from None
    if not raw:
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError:
        raise Unreachable(f"{url} answered HTTP {status} with a body that is not JSON") from None
