"""Pre-registration takeover: an address is proven before the account holds lasting access."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts import cli_login, services, session_keys
from accounts.models import AuditAction, AuditEvent, Membership, SessionKey, User
from accounts.verification import EmailNotVerified
from tests.conftest import PASSWORD, Persona, client_for, make_user

pytestmark = pytest.mark.django_db


def sign_up(client: Client, email: str, next_path: str = "", capture=None) -> str:
    """Sign up through the form and return the path of the emailed verification link."""
    mail.outbox.clear()
    data = {"name": "Vera Verify", "email": email, "password": PASSWORD}
    if next_path:
        data["next"] = next_path
    with capture(execute=True):
        client.post(reverse("accounts:sign-up"), data)
    (message,) = mail.outbox
    return re.search(r"/verify-email/[^/\s]+/", message.body).group(0)


@pytest.fixture
def unverified(django_capture_on_commit_callbacks) -> tuple[Persona, str]:
    link = sign_up(Client(), "vera@example.com", capture=django_capture_on_commit_callbacks)
    return Persona(User.objects.get(email="vera@example.com")), link


def test_the_link_verifies_on_a_post_by_the_signed_in_owner_never_on_get(unverified):
    vera, link = unverified
    client = client_for(vera)

    page = client.get(link)
    vera.user.refresh_from_db()
    assert page.status_code == 200 and not vera.user.is_verified
    assert b"Verify my email" in page.content

    response = client.post(link)
    vera.user.refresh_from_db()
    assert vera.user.is_verified
    assert response["Location"] == reverse("accounts:home")
    assert AuditEvent.objects.filter(action=AuditAction.EMAIL_VERIFIED, user=vera.user).exists()
    assert client.post(link).status_code == 302  # following it twice is harmless


def test_signed_out_the_link_needs_the_accounts_password(unverified):
    vera, link = unverified
    client = Client()

    wrong = client.post(link, {"password": "not the password at all"})
    vera.user.refresh_from_db()
    assert wrong.status_code == 400 and not vera.user.is_verified
    assert b"do not match" in wrong.content
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_IN_FAILED, user=vera.user).exists()

    right = client.post(link, {"password": PASSWORD})
    vera.user.refresh_from_db()
    assert vera.user.is_verified
    assert right.status_code == 302
    assert client.get(reverse("accounts:settings")).status_code == 200  # and signed in


def test_the_address_owner_clicking_a_link_they_did_not_ask_for_verifies_nothing(unverified):
    """A squatter signed up with Vera's address: Vera's click without the password is no yes."""
    vera, link = unverified
    Client().get(link)
    Client().post(link)

    vera.user.refresh_from_db()
    assert not vera.user.is_verified


def test_a_link_for_another_account_is_refused(unverified, outsider):
    vera, link = unverified
    response = client_for(outsider).post(link)

    vera.user.refresh_from_db()
    assert response.status_code == 403 and not vera.user.is_verified
    assert b"Sign out, then open the link again" in response.content


@pytest.mark.parametrize(
    "tamper",
    [
        lambda link: link.replace("/verify-email/", "/verify-email/x"),
        lambda link: link[:-3] + "AA/",
        lambda link: "/verify-email/" + "a" * 600 + "/",
        lambda link: "/verify-email/eyJ1IjoiMSJ9:abc:def/",
    ],
)
def test_a_forged_link_is_a_404(unverified, tamper):
    vera, link = unverified

    response = client_for(vera).post(tamper(link))

    vera.user.refresh_from_db()
    assert response.status_code == 404 and not vera.user.is_verified
    assert b"not valid or has expired" in response.content


def test_the_link_expires(unverified, settings):
    vera, link = unverified
    settings.EMAIL_VERIFICATION_TTL = timedelta(seconds=-1)  # every link is already too old

    response = client_for(vera).post(link)

    vera.user.refresh_from_db()
    assert response.status_code == 404 and not vera.user.is_verified


def test_an_unverified_user_is_told_what_to_do_and_can_resend_once_a_minute(
    unverified, django_capture_on_commit_callbacks
):
    vera, _link = unverified
    client = client_for(vera)

    home = client.get(reverse("accounts:settings"))
    assert b"Verify your email address." in home.content
    assert b"Send the link again" in home.content

    mail.outbox.clear()
    # The sign-up mail went out a moment ago: the first resend already waits.
    refused = client.post(reverse("accounts:verify-email-resend"), follow=True)
    assert mail.outbox == []
    assert re.search(rb"wait \d+ seconds? and try again", refused.content)


def test_resend_mails_a_working_link_when_allowed(
    unverified, settings, django_capture_on_commit_callbacks
):
    vera, _link = unverified
    client = client_for(vera)
    # A new minute: the per-minute counter of the sign-up mail is forgotten.
    settings.REDIS_KEY_PREFIX += "-later"

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        sent = client.post(reverse("accounts:verify-email-resend"), follow=True)
    (message,) = mail.outbox
    assert b"We sent a new link to vera@example.com" in sent.content
    link = re.search(r"/verify-email/[^/\s]+/", message.body).group(0)
    client.post(link)
    vera.user.refresh_from_db()
    assert vera.user.is_verified


def test_a_verified_user_sees_no_banner(owner_client):
    assert (
        b"Verify your email address." not in owner_client.get(reverse("accounts:settings")).content
    )


def test_an_unverified_account_cannot_mint_a_session_key_through_the_api(unverified):
    vera, _link = unverified

    response = client_for(vera).post(
        "/api/v1/session-keys", {"name": "CI"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert response.json()["code"] == "email_unverified"
    assert "Verify your email address" in response.json()["detail"]
    assert not SessionKey.objects.exists()


def test_an_unverified_account_cannot_mint_a_session_key_on_the_settings_page(unverified):
    vera, _link = unverified
    client = client_for(vera)

    page = client.get(reverse("accounts:session-keys"))
    assert b"Verify your email address to create keys" in page.content
    assert b"Create key" not in page.content
    response = client.post(reverse("accounts:session-keys"), {"name": "CI"})

    assert response.status_code == 403
    assert b"Verify your email address" in response.content
    assert not SessionKey.objects.exists()


def test_an_unverified_account_cannot_approve_a_cli_login(unverified):
    vera, _link = unverified
    login, secret = cli_login.start(client_name="Prisma 1 CLI")

    response = client_for(vera).post(
        reverse("accounts:cli-auth"), {"secret": secret, "action": "authorize"}
    )

    assert b"Verify your email address before you authorize a CLI" in response.content
    login.refresh_from_db()
    assert login.status == login.Status.PENDING
    assert not SessionKey.objects.exists()


def test_the_service_refuses_keys_for_unverified_accounts(unverified):
    vera, _link = unverified

    with pytest.raises(EmailNotVerified) as refused:
        session_keys.issue(vera.user, name="x", origin=SessionKey.Origin.API)

    assert "Verify your email address" in str(refused.value)


def test_an_unverified_account_cannot_accept_or_decline_an_invitation(
    owner, team, django_capture_on_commit_callbacks
):
    """The squatter on the invited address gets nothing from the invitation."""
    owner_client = client_for(owner)
    squatter = make_user("invitee@example.com", "Squatter", verified=False)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("accounts:members", args=["acme"]),
            {"email": "invitee@example.com", "role": "admin"},
        )
    path = re.search(r"/invitations/[^/\s]+/", mail.outbox[0].body).group(0)
    client = client_for(Persona(squatter))

    page = client.get(path)
    assert b"Verify your email address to answer this invitation" in page.content
    assert b"Accept invitation" not in page.content
    for action in ("accept", "decline"):
        answered = client.post(path, {"action": action}, follow=True)
        assert b"Verify your email address before you answer an invitation" in answered.content
    assert not Membership.objects.filter(workspace=team, user=squatter).exists()
    assert team.invitations.pending().count() == 1


def test_a_password_reset_takes_the_account_back_from_a_squatter(
    django_capture_on_commit_callbacks,
):
    """Someone signed up with Vera's address before verification existed, and holds keys and
    a session; Vera resets the password from her mailbox."""
    squatter = make_user("vera@example.com", "Not Vera", password="squatter passphrase 1")
    _key, token = session_keys.issue(squatter, name="kept", origin=SessionKey.Origin.API)
    session_keys.issue(squatter, name="another", origin=SessionKey.Origin.CONSOLE)
    User.objects.filter(pk=squatter.pk).update(email_verified_at=None)
    squatter_browser = client_for(Persona(squatter, "squatter passphrase 1"))
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert Client().get("/api/v1/me", **bearer).status_code == 200

    vera = Client()
    mail.outbox.clear()
    vera.post(reverse("accounts:password-reset"), {"email": "vera@example.com"})
    link = re.search(r"/password-reset/\S+/", mail.outbox[0].body).group(0)
    form = vera.get(link, follow=True)
    done = vera.post(
        form.redirect_chain[-1][0],
        {"new_password1": "vera takes it back 7", "new_password2": "vera takes it back 7"},
        follow=True,
    )

    assert b"every session was signed out and 2 CLI session keys were revoked" in done.content
    assert Client().get("/api/v1/me", **bearer).status_code in (401, 403)
    assert not SessionKey.objects.live().exists()
    signed_out = squatter_browser.get(reverse("accounts:settings"))
    assert signed_out.status_code == 302 and "/sign-in/" in signed_out["Location"]
    event = AuditEvent.objects.get(action=AuditAction.PASSWORD_RESET, user=squatter)
    assert event.detail["keys_revoked"] == 2
    squatter.refresh_from_db()
    assert squatter.is_verified  # the reset link proved the mailbox


def test_services_sign_up_for_an_existing_address_creates_nothing(owner):
    assert services.sign_up(email="OWNER@example.com", name="X", password=PASSWORD) is None
    assert User.objects.filter(email="owner@example.com").count() == 1
