import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditAction, AuditEvent, Invitation, Membership, Role, hash_token
from tests.conftest import Persona, client_for, make_user

MEMBERS = reverse("accounts:members", args=["acme"])


@pytest.fixture
def invite(django_capture_on_commit_callbacks):
    def invite(client: Client, email: str, role: str = "member") -> str:
        """Invite through the console and return the path of the emailed link."""
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(MEMBERS, {"email": email, "role": role})
        assert response.status_code == 200, response.content
        assert b"Invitation sent to" in response.content
        (message,) = mail.outbox
        assert message.to == [email.lower()]
        return re.search(r"/invitations/[^/\s]+/", message.body).group(0)

    return invite


@pytest.fixture
def newcomer(db) -> Persona:
    return Persona(make_user("newcomer@example.com", "Nina Newcomer"))


def test_an_invitation_is_stored_hashed_and_accepted_once(owner_client, newcomer, team, invite):
    path = invite(owner_client, "Newcomer@Example.com", "admin")
    token = path.split("/")[2]
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hash_token(token)
    assert token not in str(Invitation.objects.values().get())

    client = client_for(newcomer)
    assert b"Join Acme" in client.get(path).content
    response = client.post(path, {"action": "accept"})

    assert response["Location"] == reverse("accounts:workspace", args=["acme"])
    assert Membership.objects.get(workspace=team, user=newcomer.user).role == Role.ADMIN
    assert AuditEvent.objects.filter(action=AuditAction.INVITATION_SENT, workspace=team).exists()
    assert AuditEvent.objects.filter(
        action=AuditAction.INVITATION_ACCEPTED, workspace=team
    ).exists()

    reused = client.post(path, {"action": "accept"}, follow=True)
    assert b"This invitation has been accepted" in reused.content
    assert Membership.objects.filter(workspace=team, user=newcomer.user).count() == 1


def test_an_expired_invitation_cannot_be_accepted(owner_client, newcomer, team, invite):
    path = invite(owner_client, newcomer.email)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = client_for(newcomer).post(path, {"action": "accept"}, follow=True)

    assert b"This invitation has expired" in response.content
    assert not Membership.objects.filter(workspace=team, user=newcomer.user).exists()


def test_invitations_expire_after_seven_days(owner_client, team, invite):
    invite(owner_client, "someone@example.com")

    invitation = Invitation.objects.get()
    assert invitation.expires_at - invitation.created_at == timedelta(days=7)


def test_only_the_invited_address_can_accept(owner_client, outsider, team, invite):
    path = invite(owner_client, "newcomer@example.com")

    response = client_for(outsider).post(path, {"action": "accept"}, follow=True)

    assert b"was sent to newcomer@example.com" in response.content
    assert not Membership.objects.filter(workspace=team, user=outsider.user).exists()


def test_a_declined_invitation_is_spent(owner_client, newcomer, team, invite):
    path = invite(owner_client, newcomer.email)
    client = client_for(newcomer)

    client.post(path, {"action": "decline"})
    client.post(path, {"action": "accept"})

    assert not Membership.objects.filter(workspace=team, user=newcomer.user).exists()
    assert Invitation.objects.get().status == "declined"


def test_a_revoked_invitation_cannot_be_used(owner_client, newcomer, team, invite):
    path = invite(owner_client, newcomer.email)

    owner_client.post(
        reverse("accounts:invitation-revoke", args=["acme"]),
        {"invitation": str(Invitation.objects.get().id)},
    )
    client_for(newcomer).post(path, {"action": "accept"})

    assert not Membership.objects.filter(workspace=team, user=newcomer.user).exists()


def test_an_unknown_link_is_a_404(db):
    response = Client().get("/invitations/not-a-real-token/")

    assert response.status_code == 404


def test_a_signed_out_visitor_signs_up_verifies_and_comes_back(
    owner_client, team, invite, django_capture_on_commit_callbacks
):
    path = invite(owner_client, "fresh@example.com")
    visitor = Client()

    page = visitor.get(path)
    sign_up_link = re.search(rb'href="(/sign-up/[^"]+)"', page.content).group(1).decode()
    form = visitor.get(sign_up_link.replace("&amp;", "&"))
    assert b'value="fresh@example.com"' in form.content  # the invited address, pre-filled
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        signed_up = visitor.post(
            sign_up_link.replace("&amp;", "&"),
            {
                "name": "Fresh",
                "email": "fresh@example.com",
                "password": "fresh passphrase 42",
                "next": path,
            },
        )
    assert signed_up["Location"] == reverse("accounts:sign-up-done")
    (message,) = mail.outbox
    verify = re.search(r"/verify-email/[^/\s]+/", message.body).group(0)
    verified = visitor.post(verify, {"password": "fresh passphrase 42"}, follow=True)

    assert verified.redirect_chain[-1][0] == path  # straight back to the invitation
    assert b"Join Acme" in verified.content
    assert b"personal workspace" not in verified.content
    visitor.post(path, {"action": "accept"})
    assert team.memberships.filter(user__email="fresh@example.com").exists()


def test_the_invitation_mail_is_plain_text_not_html_escaped(
    owner, owner_client, django_capture_on_commit_callbacks
):
    personal = owner.user.memberships.get(workspace__is_personal=True).workspace
    assert personal.name == "Olivia Owner's workspace"
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            reverse("accounts:members", args=[personal.slug]),
            {"email": "ada@example.com", "role": "member"},
        )

    (message,) = mail.outbox
    assert '"Olivia Owner\'s workspace"' in message.body
    assert "&#x27;" not in message.body and "&quot;" not in message.body
    assert message.subject == "Olivia Owner invited you to Olivia Owner's workspace on Refract"


def test_members_cannot_invite(member_client, team):
    response = member_client.post(MEMBERS, {"email": "friend@example.com", "role": "member"})

    assert response.status_code == 403
    assert b"Only owners and admins can invite" in response.content
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_admins_cannot_invite_owners(admin_client, team):
    response = admin_client.post(MEMBERS, {"email": "boss@example.com", "role": "owner"})

    assert b"Only owners can invite owners" in response.content
    assert not Invitation.objects.exists()


def test_inviting_an_existing_member_or_a_bad_address_is_refused(owner_client, team):
    existing = owner_client.post(MEMBERS, {"email": "member@example.com", "role": "member"})
    bad = owner_client.post(MEMBERS, {"email": "not an email", "role": "member"})
    huge = owner_client.post(MEMBERS, {"email": "a" * 300 + "@example.com", "role": "member"})

    assert b"already a member" in existing.content
    assert b"Enter a valid email address" in bad.content
    assert huge.status_code == 400
    assert not Invitation.objects.exists()


def test_a_new_invitation_with_the_same_role_replaces_the_pending_one_and_says_so(
    owner_client, newcomer, team, invite
):
    invite(owner_client, newcomer.email, "admin")
    response = owner_client.post(MEMBERS, {"email": newcomer.email, "role": "admin"})

    assert b"It replaces the invitation sent on" in response.content
    assert team.invitations.pending().get().role == Role.ADMIN


def test_inviting_again_with_another_role_asks_first_and_keeps_the_role(
    owner_client, newcomer, team, invite
):
    first = invite(owner_client, newcomer.email, "admin")

    asked = owner_client.post(MEMBERS, {"email": newcomer.email, "role": "member"})

    assert asked.status_code == 409
    assert b"already has a pending invitation as admin" in asked.content
    assert b'name="replace" value="True"' in asked.content
    assert re.search(rb'<option value="admin"\s+selected', asked.content)
    pending = team.invitations.pending().get()
    assert pending.role == Role.ADMIN  # nothing changed yet, the first link still works
    client_for(newcomer).post(first, {"action": "accept"})
    assert Membership.objects.get(workspace=team, user=newcomer.user).role == Role.ADMIN


def test_inviting_again_with_another_role_after_confirming_replaces(
    owner_client, newcomer, team, invite
):
    first = invite(owner_client, newcomer.email, "admin")

    owner_client.post(MEMBERS, {"email": newcomer.email, "role": "member", "replace": "True"})

    assert team.invitations.pending().get().role == Role.MEMBER
    client_for(newcomer).post(first, {"action": "accept"})
    assert not Membership.objects.filter(workspace=team, user=newcomer.user).exists()


def test_a_new_invitation_replaces_the_pending_one(owner_client, newcomer, team, invite):
    first = invite(owner_client, newcomer.email)
    second = invite(owner_client, newcomer.email)
    client = client_for(newcomer)

    client.post(first, {"action": "accept"})
    assert not Membership.objects.filter(workspace=team, user=newcomer.user).exists()
    client.post(second, {"action": "accept"})
    assert Membership.objects.filter(workspace=team, user=newcomer.user).exists()
