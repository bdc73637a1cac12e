from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from accounts import services
from accounts.models import AuditAction, AuditEvent
from accounts.services import GENERIC_SIGN_IN_ERROR

URL = reverse("accounts:sign-in")


def sign_in(client: Client, email: str, password: str, **extra):
    return client.post(URL, {"email": email, "password": password, **extra})


def test_sign_in_starts_a_new_session_and_records_it(client, owner):
    client.get(URL)
    client.cookies["sessionid"] = "attacker-chosen-session-id"

    response = sign_in(client, owner.email, owner.password)

    assert response.status_code == 302
    assert client.cookies["sessionid"].value != "attacker-chosen-session-id"
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_IN, user=owner.user).exists()


def test_email_is_case_insensitive(client, owner):
    response = sign_in(client, owner.email.upper(), owner.password)

    assert response.status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_generic_message(client, owner):
    wrong_password = sign_in(client, owner.email, "not the password")
    unknown_email = sign_in(client, "nobody@example.com", owner.password)

    for response in (wrong_password, unknown_email):
        assert response.status_code == 200
        assert GENERIC_SIGN_IN_ERROR.encode() in response.content
    assert "_auth_user_id" not in client.session
    failures = AuditEvent.objects.filter(action=AuditAction.SIGN_IN_FAILED)
    assert failures.count() == 2
    assert failures.filter(user=owner.user).count() == 1


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/workspaces/", "/workspaces/"),
        ("https://evil.example.com/", "/"),
        ("//evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_next_redirects_only_to_our_own_paths(client, owner, next_url, expected):
    response = sign_in(client, owner.email, owner.password, next=next_url)

    assert response.status_code == 302
    assert response["Location"] == expected


def test_repeated_failures_back_off_softly(client, owner, settings):
    settings.SIGN_IN_BACKOFF_AFTER = 3
    for _ in range(3):
        assert sign_in(client, owner.email, "wrong").status_code == 200

    response = sign_in(client, owner.email, owner.password)

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert b"Too many failed attempts" in response.content
    assert "_auth_user_id" not in client.session


def test_the_back_off_counts_per_address_too(owner, outsider, settings):
    settings.SIGN_IN_ADDRESS_BACKOFF_AFTER = 100
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 4
    client = Client(REMOTE_ADDR="203.0.113.9")
    for index in range(4):
        sign_in(client, f"guess{index}@example.com", "wrong")

    assert sign_in(client, outsider.email, outsider.password).status_code == 429
    other_address = Client(REMOTE_ADDR="203.0.113.10")
    assert sign_in(other_address, outsider.email, outsider.password).status_code == 302


def test_an_account_takes_at_most_the_hourly_ceiling_of_failures(client, owner, settings):
    settings.SIGN_IN_BACKOFF_AFTER = 1000
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 5
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 1000
    for _ in range(5):
        sign_in(Client(REMOTE_ADDR="198.51.100.1"), owner.email, "wrong")

    response = sign_in(Client(REMOTE_ADDR="198.51.100.2"), owner.email, owner.password)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 3000  # the oldest failure ages out after an hour


def test_a_success_clears_the_account_failures(client, owner, settings):
    settings.SIGN_IN_BACKOFF_AFTER = 3
    for _ in range(2):
        sign_in(client, owner.email, "wrong")
    assert sign_in(client, owner.email, owner.password).status_code == 302
    client.post(reverse("accounts:sign-out"))

    for _ in range(2):
        sign_in(client, owner.email, "wrong")
    assert sign_in(client, owner.email, owner.password).status_code == 302


def test_sign_out_needs_a_post_and_deletes_the_server_side_session(client, owner):
    sign_in(client, owner.email, owner.password)
    session_key = client.session.session_key

    assert client.get(reverse("accounts:sign-out")).status_code == 405
    response = client.post(reverse("accounts:sign-out"))

    assert response.status_code == 302
    assert not Session.objects.filter(session_key=session_key).exists()
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_OUT, user=owner.user).exists()
    assert client.get(reverse("accounts:settings")).status_code == 302


def test_an_idle_session_expires(client, owner, settings):
    sign_in(client, owner.email, owner.password)
    session = client.session
    session["last_seen"] -= 3 * 3600
    session.save()
    settings.SESSION_IDLE_TIMEOUT = timedelta(hours=1)

    response = client.get(reverse("accounts:settings"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:sign-in"))


def test_a_session_ends_after_the_absolute_timeout_even_when_active(client, owner, settings):
    sign_in(client, owner.email, owner.password)
    session = client.session
    session["signed_in_at"] -= 8 * 24 * 3600
    session.save()
    settings.SESSION_ABSOLUTE_TIMEOUT = timedelta(days=7)

    assert client.get(reverse("accounts:settings")).status_code == 302


def test_pages_need_a_signed_in_user_and_come_back_after(client, owner):
    response = client.get(reverse("accounts:workspaces"))

    assert response.status_code == 302
    assert response["Location"] == f"{URL}?next=/workspaces/"
    assert sign_in(client, owner.email, owner.password, next="/workspaces/")["Location"] == (
        "/workspaces/"
    )


def test_the_wait_is_said_in_good_english():
    assert services.seconds_phrase(1) == "1 second"
    assert services.seconds_phrase(0) == "0 seconds"
    assert services.seconds_phrase(42) == "42 seconds"


def test_a_throttled_sign_in_says_how_long_to_wait(client, owner, settings):
    settings.SIGN_IN_BACKOFF_AFTER = 1000
    settings.SIGN_IN_MAX_FAILURES_PER_ACCOUNT = 2
    for _ in range(2):
        sign_in(client, owner.email, "wrong")

    response = sign_in(client, owner.email, owner.password)

    wait = int(response["Retry-After"])
    assert f"Wait {services.seconds_phrase(wait)} and try again.".encode() in response.content
