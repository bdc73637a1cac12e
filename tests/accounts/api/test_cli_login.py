"""The CLI login flow: REST start and poll, browser approval at /cli-auth and /device."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import cli_login
from accounts.models import AuditAction, AuditEvent, CliLoginRequest, SessionKey
from tests.conftest import client_for


def start(client: Client | None = None, **body) -> dict:
    client = client or Client()
    response = client.post(
        "/api/v1/cli-login",
        {"client_name": "refract-cli", "host": "build-box", **body},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def poll(device_code: str):
    return Client().post(
        "/api/v1/cli-login/poll", {"device_code": device_code}, content_type="application/json"
    )


def age_last_poll(seconds: int = 60) -> None:
    CliLoginRequest.objects.update(last_polled_at=timezone.now() - timedelta(seconds=seconds))


def approve_by_code(client: Client, user_code: str, action: str = "authorize"):
    return client.post("/device", {"code": user_code, "action": action})


def test_start_returns_a_secret_a_user_code_and_the_polling_terms(db):
    started = start()

    assert len(started["device_code"]) >= 40  # 256 bits, url-safe
    code = started["user_code"].replace("-", "")
    assert len(code) == 8
    assert set(code) <= set("BCDFGHJKLMNPQRSTVWXZ")
    assert started["verification_uri"].endswith("/device")
    assert started["verification_uri_complete"].endswith(f"/device?code={code}")
    assert started["interval"] == 5
    assert started["expires_in"] == 600
    login = CliLoginRequest.objects.get()
    assert started["device_code"] not in str(CliLoginRequest.objects.values().get())
    assert login.client_host == "build-box"


def test_the_full_flow_approve_then_the_key_once(owner):
    started = start()

    pending = poll(started["device_code"])
    assert pending.status_code == 400
    assert pending.json()["code"] == "authorization_pending"

    page = client_for(owner).post("/device", {"code": started["user_code"]})
    assert b"refract-cli" in page.content and b"build-box" in page.content
    assert started["user_code"].encode() in page.content  # to compare with the terminal
    done = approve_by_code(client_for(owner), started["user_code"])
    assert b"CLI authorized" in done.content

    age_last_poll()
    delivered = poll(started["device_code"])
    assert delivered.status_code == 200
    key = delivered.json()["key"]
    me = Client().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert me.json()["email"] == owner.email
    assert SessionKey.objects.get().name == "refract-cli on build-box"

    age_last_poll()
    again = poll(started["device_code"])
    assert again.status_code == 400
    assert again.json()["code"] == "invalid_grant"
    assert AuditEvent.objects.filter(action=AuditAction.CLI_LOGIN_APPROVED).exists()


def test_a_denied_request_gives_no_key(owner):
    started = start()

    approve_by_code(client_for(owner), started["user_code"], "deny")

    assert poll(started["device_code"]).json()["code"] == "access_denied"
    assert not SessionKey.objects.exists()
    assert AuditEvent.objects.filter(action=AuditAction.CLI_LOGIN_DENIED).exists()


def test_an_expired_request_cannot_be_approved_or_polled(owner):
    started = start()
    CliLoginRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = approve_by_code(client_for(owner), started["user_code"])

    assert response.status_code == 400
    assert poll(started["device_code"]).json()["code"] == "expired_token"
    assert not SessionKey.objects.exists()


def test_polling_faster_than_the_interval_slows_down(db):
    started = start()
    poll(started["device_code"])

    too_fast = poll(started["device_code"])

    assert too_fast.json()["code"] == "slow_down"
    assert too_fast.json()["interval"] == 10
    age_last_poll(11)
    assert poll(started["device_code"]).json()["code"] == "authorization_pending"


def test_an_unknown_device_code_is_invalid(db):
    response = poll("not-a-device-code")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_grant"


def test_at_most_five_wrong_user_codes(owner):
    started = start()
    client = client_for(owner)
    for wrong in ["BBBB-BBBB", "CCCC-CCCC", "DDDD-DDDD", "FFFF-FFFF", "GGGG-GGGG"]:
        response = approve_by_code(client, wrong)
        assert response.status_code == 400
        assert b"does not match" in response.content

    blocked = approve_by_code(client, started["user_code"])

    assert blocked.status_code == 429
    assert b"Too many wrong codes" in blocked.content
    assert CliLoginRequest.objects.get().status == "pending"


def test_a_request_is_single_use_and_bound_to_the_user_who_approved(owner, outsider):
    _login, secret = cli_login.start(client_name="Prisma 1 CLI")
    client_for(owner).post("/cli-auth", {"secret": secret, "action": "authorize"})

    second = client_for(outsider).post("/cli-auth", {"secret": secret, "action": "authorize"})

    assert second.status_code == 409
    assert b"already used" in second.content
    assert SessionKey.objects.get().user == owner.user


def test_the_approval_page_never_approves_on_get(owner):
    _login, secret = cli_login.start(client_name="Prisma 1 CLI")
    client = client_for(owner)

    page = client.get(f"/cli-auth?secret={secret}&action=authorize")

    assert page.status_code == 200
    assert b"Authorize" in page.content and b"Deny" in page.content
    assert b'data-testid="user-code"' not in page.content  # the Prisma CLI shows no code
    assert CliLoginRequest.objects.get().status == "pending"


def test_the_approval_page_requires_csrf(owner):
    _login, secret = cli_login.start(client_name="Prisma 1 CLI")
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)

    response = client.post("/cli-auth", {"secret": secret, "action": "authorize"})

    assert response.status_code == 403
    assert CliLoginRequest.objects.get().status == "pending"


def test_a_signed_out_user_signs_in_and_comes_back_to_the_same_request(owner):
    _login, secret = cli_login.start(client_name="Prisma 1 CLI")
    client = Client()

    redirect = client.get(f"/cli-auth?secret={secret}")
    assert redirect.status_code == 302
    signed_in = client.post(
        redirect["Location"], {"email": owner.email, "password": owner.password}
    )

    assert signed_in["Location"] == f"/cli-auth?secret={secret}"
    assert b"Authorize a command-line login" in client.get(signed_in["Location"]).content


def test_an_unknown_secret_shows_a_clear_page(owner_client):
    response = owner_client.get("/cli-auth?secret=nope")

    assert response.status_code == 404
    assert b"Login request not found" in response.content


@pytest.mark.parametrize("body", [{"client_name": "x" * 101}, {"host": ["a"]}])
def test_bad_start_input_is_refused(db, body):
    response = Client().post("/api/v1/cli-login", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not CliLoginRequest.objects.exists()


def test_starting_logins_is_rate_limited_per_address(db):
    statuses = [
        Client().post("/api/v1/cli-login", {}, content_type="application/json").status_code
        for _ in range(21)
    ]

    assert statuses[:20] == [201] * 20
    assert statuses[20] == 429


def test_a_pasted_prisma_cli_link_leads_to_its_approval_page(owner_client):
    _login, secret = cli_login.start(client_name="Prisma 1 CLI")

    response = owner_client.post(
        "/device", {"code": f"https://app.prisma.io/cli-auth?secret={secret}"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"/cli-auth?secret={secret}"


def prisma_cli_start(**extra) -> str:
    body = {"query": "mutation { requestCloudToken { secret } }"}
    response = Client(**extra).post("/cloud-api", body, content_type="application/json")
    return response.json()["data"]["requestCloudToken"]["secret"]


def prisma_cli_poll(secret: str) -> dict:
    body = {
        "query": "query ($s: String!) { cloudTokenRequest(secret: $s) { secret token } }",
        "variables": {"s": secret},
    }
    return Client().post("/cloud-api", body, content_type="application/json").json()


def test_approving_after_the_prisma_cli_stopped_polling_mints_nothing(owner):
    secret = prisma_cli_start()
    prisma_cli_poll(secret)
    client = client_for(owner)
    assert b"Authorize a command-line login" in client.get(f"/cli-auth?secret={secret}").content
    # The CLI polls every second; ten silent seconds mean it was closed or gave up.
    age_last_poll(10)

    page = client.get(f"/cli-auth?secret={secret}")
    clicked = client.post("/cli-auth", {"secret": secret, "action": "authorize"})

    assert b"no longer waiting" in page.content
    assert b'value="authorize"' not in page.content
    assert clicked.status_code == 409
    assert b"no longer waiting" in clicked.content
    assert b"CLI authorized" not in clicked.content
    assert not SessionKey.objects.exists()
    assert CliLoginRequest.objects.get().status == "pending"
    assert not AuditEvent.objects.filter(action=AuditAction.CLI_LOGIN_APPROVED).exists()


def test_a_prisma_cli_that_is_still_polling_can_be_approved(owner):
    secret = prisma_cli_start()
    prisma_cli_poll(secret)
    age_last_poll(3)  # a second's sleep plus a held poll: still waiting

    clicked = client_for(owner).post("/cli-auth", {"secret": secret, "action": "authorize"})

    assert b"CLI authorized" in clicked.content
    assert prisma_cli_poll(secret)["data"]["cloudTokenRequest"]["token"]


def test_a_device_flow_client_gone_quiet_cannot_be_approved_by_code(owner):
    started = start()
    poll(started["device_code"])
    age_last_poll(3 * 5 + 3)  # three missed polls at its 5 s interval, and the grace

    response = approve_by_code(client_for(owner), started["user_code"])

    assert response.status_code == 409
    assert b"no longer waiting" in response.content
    assert not SessionKey.objects.exists()


def test_the_page_marks_claims_shows_the_code_and_says_what_approving_gives(owner):
    started = start(client_name="Official Refract CLI", host="laptop.example.com")

    page = client_for(owner).post("/device", {"code": started["user_code"]}).content.decode()

    assert "What the requesting machine claims" in page
    assert "Client (claimed)" in page and "“Official Refract CLI”" in page
    assert "Host (claimed)" in page and "“laptop.example.com”" in page
    assert f'data-testid="user-code" style="font-size:1.3em">{started["user_code"]}' in page
    assert "full access to your account owner@example.com" in page


def test_the_prisma_cli_page_says_what_approving_gives_without_a_code(owner):
    secret = prisma_cli_start()

    page = client_for(owner).get(f"/cli-auth?secret={secret}").content.decode()

    assert "full access to your account owner@example.com" in page
    assert "shows no code to compare" in page
    assert 'data-testid="user-code"' not in page


@pytest.mark.parametrize("name", ["Prisma 1 CLI", " prisma 1 cli "])
def test_a_device_flow_cannot_claim_to_be_the_prisma_cli_to_hide_its_code(db, name):
    response = Client().post(
        "/api/v1/cli-login", {"client_name": name}, content_type="application/json"
    )

    assert response.status_code == 400
    assert not CliLoginRequest.objects.exists()


def test_a_changing_x_forwarded_for_does_not_escape_the_start_limit(db):
    statuses = [
        Client(HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
        .post("/api/v1/cli-login", {}, content_type="application/json")
        .status_code
        for i in range(25)
    ]

    assert statuses.count(201) == 20
    assert statuses[20:] == [429] * 5
    assert set(CliLoginRequest.objects.values_list("client_ip", flat=True)) == {"127.0.0.1"}


def test_a_changing_x_forwarded_for_does_not_escape_the_poll_throttle(db):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "cli_login_poll": "3/min"}
    original, ScopedRateThrottle.THROTTLE_RATES = ScopedRateThrottle.THROTTLE_RATES, rates
    try:
        statuses = [
            Client(HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
            .post("/api/v1/cli-login/poll", {"device_code": "x"}, content_type="application/json")
            .status_code
            for i in range(5)
        ]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original

    assert statuses == [400, 400, 400, 429, 429]


def test_behind_one_trusted_proxy_each_client_has_its_own_limit(db, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.CLI_LOGIN_START_RATE = "2/min"

    def start_from(chain: str) -> int:
        return (
            Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=chain)
            .post("/api/v1/cli-login", {}, content_type="application/json")
            .status_code
        )

    # The client writes the left part itself; only the proxy's entry on the right counts.
    first = [start_from(f"198.51.100.{i}, 192.0.2.1") for i in range(3)]
    other = start_from("192.0.2.2")
    garbage = start_from("<script>, not-an-ip")

    assert first == [201, 201, 429]
    assert other == 201
    assert garbage == 201
    stored = set(CliLoginRequest.objects.values_list("client_ip", flat=True))
    assert stored == {"192.0.2.1", "192.0.2.2", "10.0.0.2"}  # never the garbage


def test_a_key_the_cli_never_collected_is_revoked_once_it_stops_polling(owner):
    """Authorize, then the CLI dies before its next poll: the key it never got must not stay
    valid. A still-polling CLI's approved key is left alone."""
    gone, alive = prisma_cli_start(), prisma_cli_start()
    for secret in (gone, alive):
        prisma_cli_poll(secret)
        assert (
            b"CLI authorized"
            in client_for(owner)
            .post("/cli-auth", {"secret": secret, "action": "authorize"})
            .content
        )
    CliLoginRequest.objects.filter(pk=cli_login.find_by_secret(gone).pk).update(
        last_polled_at=timezone.now() - timedelta(seconds=60)
    )

    assert cli_login.revoke_uncollected() == 1
    assert cli_login.revoke_uncollected() == 0  # idempotent

    assert SessionKey.objects.live().count() == 1
    assert "errors" in prisma_cli_poll(gone)  # nothing to collect any more
    assert prisma_cli_poll(alive)["data"]["cloudTokenRequest"]["token"]
    assert AuditEvent.objects.filter(action=AuditAction.SESSION_KEY_REVOKED).count() == 1
