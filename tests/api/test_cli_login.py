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
