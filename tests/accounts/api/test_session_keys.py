import re
from datetime import timedelta

import jwt
import pytest
from django.test import Client
from django.utils import timezone

from accounts import session_keys
from accounts.models import AuditAction, AuditEvent, SessionKey
from tests.conftest import client_for


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def owner_key(owner):
    _key, token = session_keys.issue(owner.user, name="laptop", origin=SessionKey.Origin.API)
    return token


def test_me_with_a_key_lists_the_user_and_workspaces_with_roles(client, owner, owner_key):
    response = client.get("/api/v1/me", **bearer(owner_key))

    assert response.status_code == 200
    body = response.json()
    assert body["email"] == owner.email
    roles = {w["slug"]: w["role"] for w in body["workspaces"]}
    assert roles["acme"] == "owner"
    assert len(roles) == 2  # acme and the personal workspace


def test_me_with_a_browser_session(owner_client):
    assert owner_client.get("/api/v1/me").json()["email"] == "owner@example.com"


def test_without_credentials_the_answer_is_401_json_with_a_code(client, db):
    response = client.get("/api/v1/me")

    assert response.status_code in (401, 403)
    assert response.json()["code"] == "not_authenticated"


def test_a_session_key_is_a_jwt_the_prisma_cli_can_read(owner, owner_key):
    claims = jwt.decode(owner_key, options={"verify_signature": False})

    assert claims["userId"] == str(owner.user.id)
    assert claims["exp"] - claims["iat"] == 30 * 24 * 3600
    key = SessionKey.objects.get()
    assert key.jti == claims["jti"]
    assert len(claims["jti"]) >= 22  # at least 128 random bits
    assert owner_key not in str(SessionKey.objects.values().get())


def test_creating_a_key_shows_it_once_and_lists_never_show_it(owner_client, client):
    created = owner_client.post(
        "/api/v1/session-keys", {"name": "CI deploy"}, content_type="application/json"
    )

    assert created.status_code == 201
    token = created.json()["key"]
    assert client.get("/api/v1/me", **bearer(token)).status_code == 200
    listed = owner_client.get("/api/v1/session-keys").json()
    assert [k["name"] for k in listed] == ["CI deploy"]
    assert "key" not in listed[0]
    assert token not in owner_client.get("/api/v1/session-keys").content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.SESSION_KEY_CREATED).exists()


def test_creating_a_key_needs_a_name(owner_client):
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"name": ["a"]}):
        response = owner_client.post("/api/v1/session-keys", body, content_type="application/json")
        assert response.status_code == 400
        assert response.json()["code"] == "invalid"
        assert "name" in response.json()["fields"]
    assert not SessionKey.objects.exists()


def test_a_revoked_key_is_refused_on_the_very_next_request(client, owner, owner_key):
    key = SessionKey.objects.get()
    assert client.get("/api/v1/me", **bearer(owner_key)).status_code == 200

    response = client_for(owner).delete(f"/api/v1/session-keys/{key.id}")

    assert response.status_code == 204
    refused = client.get("/api/v1/me", **bearer(owner_key))
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    assert "revoked" in refused.json()["detail"]


def test_an_expired_key_is_refused(client, owner, owner_key):
    SessionKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get("/api/v1/me", **bearer(owner_key)).status_code == 401


def test_a_key_past_its_exp_claim_is_refused_even_if_the_row_says_live(client, owner):
    key, _ = session_keys.issue(owner.user, name="old", origin=SessionKey.Origin.API)
    key.created_at -= timedelta(days=40)
    key.expires_at = key.created_at + timedelta(days=30)
    token = session_keys.token_for(key)
    SessionKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=1))

    response = client.get("/api/v1/me", **bearer(token))

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # bad signature
        lambda t: jwt.encode(
            jwt.decode(t, options={"verify_signature": False}), "guess" * 8, algorithm="HS256"
        ),
        lambda t: "not-a-jwt",
        lambda t: jwt.encode(
            jwt.decode(t, options={"verify_signature": False}), "", algorithm="none"
        ),
    ],
)
def test_a_tampered_key_is_refused(client, owner_key, mangle):
    response = client.get("/api/v1/me", **bearer(mangle(owner_key)))

    assert response.status_code == 401


def test_a_forged_key_for_another_user_with_a_live_jti_is_refused(client, owner, outsider):
    _key, outsider_token = session_keys.issue(outsider.user, name="x", origin=SessionKey.Origin.API)
    claims = jwt.decode(outsider_token, options={"verify_signature": False})
    claims["userId"] = str(owner.user.id)
    forged = jwt.encode(claims, session_keys.signing_key(), algorithm="HS256")

    # Even with the signing key, a jti only works for the user it was issued to.
    assert client.get("/api/v1/me", **bearer(forged)).status_code == 401


def test_another_users_key_id_is_404(owner, outsider):
    key, _ = session_keys.issue(owner.user, name="owner's", origin=SessionKey.Origin.API)

    response = client_for(outsider).delete(f"/api/v1/session-keys/{key.id}")

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    key.refresh_from_db()
    assert key.revoked_at is None


def test_logout_revokes_the_key_making_the_request(client, owner, owner_key):
    _other_key, other_token = session_keys.issue(
        owner.user, name="desktop", origin=SessionKey.Origin.API
    )

    response = client.delete("/api/v1/session-keys/current", **bearer(owner_key))

    assert response.status_code == 204
    assert client.get("/api/v1/me", **bearer(owner_key)).status_code == 401
    assert client.get("/api/v1/me", **bearer(other_token)).status_code == 200


def test_revoke_all(client, owner, owner_key):
    _, second = session_keys.issue(owner.user, name="second", origin=SessionKey.Origin.API)

    response = client_for(owner).post("/api/v1/session-keys/revoke-all")

    assert response.json() == {"revoked": 2}
    for token in (owner_key, second):
        assert client.get("/api/v1/me", **bearer(token)).status_code == 401


def test_a_session_cookie_request_needs_csrf(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)

    response = client.post("/api/v1/session-keys", {"name": "x"}, content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not SessionKey.objects.exists()


def test_with_a_bearer_header_the_cookie_is_ignored(owner, outsider):
    """Never both: a bad key with a good cookie is still refused."""
    client = client_for(owner)

    response = client.get("/api/v1/me", **bearer("not-a-jwt"))

    assert response.status_code == 401


def test_last_used_time_and_address_are_recorded(owner, owner_key):
    Client(REMOTE_ADDR="203.0.113.5").get("/api/v1/me", **bearer(owner_key))

    key = SessionKey.objects.get()
    assert key.last_used_at is not None
    assert key.last_used_ip == "203.0.113.5"


def test_rate_limits_answer_429_with_retry_after(client, owner_key, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "api": "3/min"}
    original = ScopedRateThrottle.THROTTLE_RATES
    ScopedRateThrottle.THROTTLE_RATES = rates
    try:
        statuses = [client.get("/api/v1/me", **bearer(owner_key)) for _ in range(4)]
    finally:
        ScopedRateThrottle.THROTTLE_RATES = original

    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert int(statuses[-1]["Retry-After"]) > 0
    assert statuses[-1].json()["code"] == "throttled"


def test_the_openapi_schema_and_docs_are_served(client, db):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    assert b"/api/v1/session-keys" in schema.content
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_the_api_and_the_console_agree_on_which_keys_are_live(owner):
    """One definition of a live key: an expired key is listed nowhere and revoked nowhere."""
    session_keys.issue(owner.user, name="live", origin=SessionKey.Origin.API)
    expired, _ = session_keys.issue(owner.user, name="expired", origin=SessionKey.Origin.API)
    session_keys.issue(owner.user, name="revoked", origin=SessionKey.Origin.API)
    SessionKey.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    SessionKey.objects.filter(name="revoked").update(revoked_at=timezone.now())
    client = client_for(owner)

    listed = [key["name"] for key in client.get("/api/v1/session-keys").json()]
    page = client.get("/settings/keys/").content.decode()

    assert listed == ["live"]
    assert re.findall(r"<td>(\w+) <span", page) == ["live"]
    assert client.delete(f"/api/v1/session-keys/{expired.pk}").status_code == 404
    assert client.post("/api/v1/session-keys/revoke-all").json() == {"revoked": 1}


def test_unknown_api_paths_answer_json_with_a_code(client, owner_key):
    for path in ("/api/v1/nope", "/api/v1/session-keys/not-a-uuid", "/api/v1/", "/api/nothing"):
        response = client.get(path, **bearer(owner_key))

        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("application/json"), path
        assert response.json()["code"] == "not_found", path


@pytest.mark.parametrize("name", [0, True, "", "   ", "a\x00b", None])
def test_a_key_name_must_be_real_text(owner_client, name):
    response = owner_client.post(
        "/api/v1/session-keys", {"name": name}, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not SessionKey.objects.exists()
