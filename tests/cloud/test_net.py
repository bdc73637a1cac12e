"""One rule for the client's address (`cloud.net.client_address`), used everywhere."""

import pytest
from django.test import Client, RequestFactory

from accounts import audit
from accounts.models import AuditEvent
from cloud import net


def address(proxies: int, settings, remote: str = "10.0.0.9", forwarded: str | None = None):
    settings.TRUSTED_PROXY_COUNT = proxies
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return net.client_address(RequestFactory().get("/", **extra))


def test_without_trusted_proxies_the_header_is_ignored(settings):
    assert address(0, settings, forwarded="1.2.3.4") == "10.0.0.9"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # the left part is the client's own
        (2, "6.6.6.6, 203.0.113.7, 10.1.1.1", "203.0.113.7"),
        (1, "203.0.113.7:51234", "203.0.113.7"),
        (1, "[2001:db8::1]:443", "2001:db8::1"),
        (1, "::ffff:203.0.113.7", "203.0.113.7"),
        (1, "2001:DB8:0:0::1", "2001:db8::1"),
        (2, "203.0.113.7", "10.0.0.9"),  # fewer hops than proxies: the peer is the client
        (1, "unknown", "10.0.0.9"),
        (1, "<script>alert(1)</script>", "10.0.0.9"),
        (1, "", "10.0.0.9"),
    ],
)
def test_the_trusted_proxy_count_picks_the_hop(settings, proxies, forwarded, expected):
    assert address(proxies, settings, forwarded=forwarded) == expected


def test_a_remote_address_that_is_not_an_ip_is_ignored(settings):
    assert address(0, settings, remote="unix-socket") is None


def test_the_audit_trail_and_sign_in_throttle_use_the_same_rule():
    assert audit.client_address is net.client_address


def test_the_audit_trail_never_stores_a_forged_address(owner, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.70, not-an-ip").post(
        "/sign-in/", {"email": owner.email, "password": "wrong"}
    )
    Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.71").post(
        "/sign-in/", {"email": owner.email, "password": "wrong"}
    )

    stored = list(AuditEvent.objects.order_by("created_at").values_list("ip_address", flat=True))
    assert stored[-2:] == ["10.0.0.2", "203.0.113.71"]
