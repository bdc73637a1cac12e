"""The console's main flows, in real Chromium."""

import re

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import Membership

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_up(page: Page, name: str, email: str, password: str) -> None:
    """Sign up, then verify the address through the emailed link, as a new user does."""
    mail.outbox.clear()
    page.goto("/sign-up/")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Verify your email")).to_be_visible()
    (message,) = mail.outbox
    page.goto(re.search(r"https?://\S+/verify-email/\S+/", message.body).group(0))
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Verify my email").click()


def sign_in(page: Page, email: str, password: str) -> None:
    page.goto("/sign-in/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_up_sign_out_wrong_password_and_sign_in(new_page):
    page = new_page()

    sign_up(page, "Grace Hopper", "grace@example.com", "compilers are fun 1952")
    expect(page.get_by_text("Welcome to Refract")).to_be_visible()
    expect(page.get_by_role("heading", name="Grace Hopper's workspace")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()

    sign_in(page, "grace@example.com", "not my password")
    expect(page.get_by_role("alert")).to_contain_text("That email and password do not match")
    expect(page).to_have_url(re.compile(r"/sign-in/$"))

    sign_in(page, "GRACE@example.com", "compilers are fun 1952")
    expect(page.get_by_role("heading", name="Grace Hopper's workspace")).to_be_visible()
    page.get_by_role("link", name="Servers", exact=True).first.click()
    expect(page.get_by_text("No servers yet: provision a sandbox")).to_be_visible()


def test_a_team_invites_a_member_who_cannot_remove_the_owner(new_page):
    owner = new_page()
    sign_up(owner, "Olivia Owner", "olivia@example.com", "owner passphrase 2026")

    owner.get_by_role("link", name="Workspaces", exact=True).click()
    owner.get_by_role("link", name="New workspace").click()
    owner.get_by_label("Name").fill("Acme")
    owner.get_by_label("Slug").fill("acme")
    owner.get_by_role("button", name="Create workspace").click()
    expect(owner.get_by_role("heading", name="Acme", exact=True)).to_be_visible()

    owner.get_by_role("link", name="Members", exact=True).click()
    mail.outbox.clear()
    owner.get_by_label("Email", exact=True).fill("milo@example.com")
    owner.get_by_label("Role", exact=True).select_option("member")
    owner.get_by_role("button", name="Send invitation").click()
    expect(owner.get_by_text("Invitation sent to milo@example.com")).to_be_visible()
    (email,) = mail.outbox
    link = re.search(r"https?://\S+/invitations/\S+/", email.body).group(0)

    member = new_page()
    member.goto(link)
    expect(member.get_by_role("heading", name="Join Acme")).to_be_visible()
    member.get_by_role("link", name="Create an account").click()
    expect(member.get_by_label("Email")).to_have_value("milo@example.com")
    mail.outbox.clear()
    member.get_by_label("Name").fill("Milo Member")
    member.get_by_label("Password").fill("member passphrase 2026")
    member.get_by_role("button", name="Create account").click()
    (verification,) = mail.outbox
    member.goto(re.search(r"https?://\S+/verify-email/\S+/", verification.body).group(0))
    member.get_by_label("Password").fill("member passphrase 2026")
    member.get_by_role("button", name="Verify my email").click()
    member.get_by_role("button", name="Accept invitation").click()

    expect(member.get_by_text("You joined Acme.")).to_be_visible()
    expect(member.get_by_role("heading", name="Acme", exact=True)).to_be_visible()
    member.get_by_test_id("workspace-switcher").click()
    expect(member.get_by_role("link", name=re.compile("Milo Member's workspace"))).to_be_visible()

    member.get_by_role("link", name="Members", exact=True).click()
    owner_row = member.locator("tr[data-email='olivia@example.com']")
    expect(owner_row).to_be_visible()
    expect(owner_row.get_by_role("button", name="Remove")).to_have_count(0)

    # Even a hand-made request (valid CSRF token, the owner's membership id) is refused.
    owner_id = Membership.objects.get(user__email="olivia@example.com", workspace__slug="acme").pk
    answer = member.evaluate(
        """async (ownerId) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const body = new URLSearchParams({csrfmiddlewaretoken: token, member: ownerId});
            const response = await fetch('/w/acme/members/remove/', {method: 'POST', body});
            return await response.text();
        }""",
        owner_id,
    )
    assert "Only owners and admins can remove members." in answer
    assert Membership.objects.filter(pk=owner_id).exists()

    owner.reload()
    expect(owner.locator("tr[data-email='milo@example.com']")).to_contain_text("Milo Member")
