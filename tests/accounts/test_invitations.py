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
        assert response.status_code == 302, response.content
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


def test_a_signed_out_visitor_is_asked_to_sign_in_and_comes_back(owner_client, team, invite):
    path = invite(owner_client, "fresh@example.com")
    visitor = Client()

    page = visitor.get(path)
    assert b"Create an account" in page.content
    signed_up = visitor.post(
        f"{reverse('accounts:sign-up')}?next={path}",
        {
            "name": "Fresh",
            "email": "fresh@example.com",
            "password": "fresh passphrase 42",
            "next": path,
        },
    )
    assert signed_up["Location"] == path
    visitor.post(path, {"action": "accept"})

    assert team.memberships.filter(user__email="fresh@example.com").exists()


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


def test_a_new_invitation_replaces_the_pending_one(owner_client, newcomer, team, invite):
    first = invite(owner_client, newcomer.email)
    second = invite(owner_client, newcomer.email)
    client = client_for(newcomer)

    client.post(first, {"action": "accept"})
    assert not Membership.objects.filter(workspace=team, user=newcomer.user).exists()
    client.post(second, {"action": "accept"})
    assert Membership.objects.filter(workspace=team, user=newcomer.user).exists()
