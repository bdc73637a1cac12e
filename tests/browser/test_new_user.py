"""A new user's first minutes, in real Chromium: sign up, verify, keys, invitations."""

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import Membership, SessionKey, User
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

A_PERSONS_PAUSE_MS = 1500  # people read before they click


def emailed_link(kind: str) -> str:
    (message,) = mail.outbox
    assert "&#x27;" not in message.body and "&amp;" not in message.body
    return re.search(rf"https?://\S+/{kind}/\S+/", message.body).group(0)


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/sign-in/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_a_new_user_verifies_by_the_emailed_link_and_then_creates_a_key(new_page):
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    mail.outbox.clear()
    page.goto("/sign-up/")
    page.get_by_label("Name").fill("Ada Newcomer")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("a long first passphrase")
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Verify your email")).to_be_visible()
    expect(page.get_by_text("We sent an email to ada@example.com")).to_be_visible()
    link = emailed_link("verify-email")

    # Signed in before verifying: the console says what to do, and keys wait.
    sign_in(page, "ada@example.com", "a long first passphrase")
    banner = page.get_by_test_id("verify-banner")
    expect(banner).to_contain_text("Verify your email address.")
    expect(banner.get_by_role("button", name="Send the link again")).to_be_visible()
    page.goto("/settings/keys/")
    expect(page.get_by_test_id("verify-for-keys")).to_be_visible()
    expect(page.get_by_role("button", name="Create key")).to_have_count(0)

    page.goto(link)
    page.wait_for_timeout(A_PERSONS_PAUSE_MS)
    page.get_by_role("button", name="Verify my email").click()
    expect(page.get_by_text("Your email address is verified. Welcome to Refract")).to_be_visible()
    expect(page.get_by_role("heading", name="Ada Newcomer's workspace")).to_be_visible()
    expect(page.get_by_test_id("verify-banner")).to_have_count(0)
    assert User.objects.get(email="ada@example.com").is_verified

    page.goto("/settings/keys/")
    page.get_by_label("Name").fill("CI deploy")
    page.get_by_role("button", name="Create key").click()
    token = page.get_by_test_id("new-key").input_value().strip()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    expect(page.locator("tr", has_text="CI deploy")).to_contain_text("UTC")

    # Revoking asks first: "Cancel" keeps the key, "OK" revokes it.
    row = page.locator("tr", has_text="CI deploy")
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_timeout(A_PERSONS_PAUSE_MS)
    assert SessionKey.objects.live().count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("It stops working immediately")).to_be_visible()
    assert SessionKey.objects.live().count() == 0


def test_an_invited_person_signs_up_with_the_address_filled_in_verifies_and_joins(new_page):
    make_user("olivia@example.com", "Olivia Owner")
    owner = new_page()
    owner.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(owner, "olivia@example.com", PASSWORD)
    owner.goto("/workspaces/new/")
    owner.get_by_label("Name").fill("Acme Data Platform")
    expect(owner.get_by_label("Slug")).to_have_value("acme-data-platform")  # suggested
    owner.get_by_role("button", name="Create workspace").click()
    owner.get_by_role("link", name="Members", exact=True).click()
    mail.outbox.clear()
    owner.get_by_label("Email", exact=True).fill("nina@example.com")
    owner.get_by_label("Role", exact=True).select_option("admin")
    owner.get_by_role("button", name="Send invitation").click()
    sent = owner.get_by_test_id("sent-invitation")
    expect(sent).to_contain_text("Invitation sent to nina@example.com")
    sent.get_by_role("button", name="Copy").click()
    invitation = emailed_link("invitations")
    assert owner.evaluate("navigator.clipboard.readText()") == invitation

    nina = new_page()
    nina.goto(invitation)
    expect(nina.get_by_role("heading", name="Join Acme Data Platform")).to_be_visible()
    nina.wait_for_timeout(A_PERSONS_PAUSE_MS)
    nina.get_by_role("link", name="Create an account").click()
    expect(nina.get_by_label("Email")).to_have_value("nina@example.com")
    mail.outbox.clear()
    nina.get_by_label("Name").fill("Nina Newcomer")
    nina.get_by_label("Password").fill("nina's own passphrase")
    nina.get_by_role("button", name="Create account").click()
    expect(nina.get_by_text("We sent an email to nina@example.com")).to_be_visible()

    nina.goto(emailed_link("verify-email"))
    nina.get_by_label("Password").fill("nina's own passphrase")
    nina.get_by_role("button", name="Verify my email").click()

    # Straight back to the invitation, with nothing about a personal workspace above it.
    expect(nina.get_by_role("heading", name="Join Acme Data Platform")).to_be_visible()
    expect(nina.get_by_text("Your email address is verified.")).to_be_visible()
    expect(nina.get_by_text("personal workspace")).to_have_count(0)
    nina.get_by_role("button", name="Accept invitation").click()
    expect(nina.get_by_text("You joined Acme Data Platform.")).to_be_visible()
    membership = Membership.objects.get(
        user__email="nina@example.com", workspace__is_personal=False
    )
    assert membership.role == "admin"
