"""The client's address: one rule for the console, the REST throttles, sign-in throttling,
the cloud API and the audit trail.

With `TRUSTED_PROXY_COUNT` proxies in front, the client is the entry that many places from the
right of X-Forwarded-For: entries further left were written by the client itself and would let
it pick its own address (and a fresh throttle bucket with every request). Without proxies,
REMOTE_ADDR is the client. Whatever is not an IP address is ignored, never stored.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import ScopedRateThrottle


def parse_address(text: str) -> str | None:
    """`text` as a normalised IP address, or None. Accepts the `a.b.c.d:port` and
    `[v6]:port` forms some proxies write."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.compressed


def client_address(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        header = request.META.get("HTTP_X_FORWARDED_FOR", "")
        chain = [hop.strip() for hop in header.split(",") if hop.strip()]
        if len(chain) >= proxies:
            # The hop our nearest trusted proxy saw; if it wrote garbage there, we know nothing
            # better than the proxy's own address, which at worst groups clients together.
            found = parse_address(chain[-proxies])
            if found:
                return found
    return parse_address(request.META.get("REMOTE_ADDR", ""))


class ScopedThrottle(ScopedRateThrottle):
    """DRF's scoped rates, with anonymous clients told apart by `client_address`.

    DRF's own `get_ident` trusts the whole X-Forwarded-For header unless `NUM_PROXIES` is set,
    so a client could pick a fresh bucket per request. (Here rather than in `cloud.api`: DRF
    imports its throttle classes while `rest_framework.views` is still loading.)
    """

    def get_ident(self, request: HttpRequest) -> str:
        return client_address(request) or "unknown"
