from django.test import Client
from django.urls import reverse

from accounts.models import AuditAction, AuditEvent


def test_the_owner_reads_workspace_events_and_members_sign_ins(owner_client, member, team):
    Client(REMOTE_ADDR="192.0.2.44").post(
        reverse("accounts:sign-in"), {"email": member.email, "password": member.password}
    )
    owner_client.post(
        reverse("accounts:member-role", args=["acme"]),
        {"member": team.memberships.get(user=member.user).pk, "role": "admin"},
    )

    page = owner_client.get(reverse("accounts:audit", args=["acme"])).content.decode()

    assert "Signed in" in page
    assert "192.0.2.44" in page
    assert "Changed a member&#x27;s role" in page
    assert "Created workspace" in page


def test_an_outsiders_activity_stays_out_of_the_trail(owner_client, outsider, team):
    Client().post(
        reverse("accounts:sign-in"), {"email": outsider.email, "password": outsider.password}
    )

    page = owner_client.get(reverse("accounts:audit", args=["acme"])).content.decode()

    assert outsider.email not in page
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_IN, user=outsider.user).exists()


def test_a_user_sees_their_own_recent_security_activity(client, owner):
    client.post(reverse("accounts:sign-in"), {"email": owner.email, "password": "wrong"})
    client.post(reverse("accounts:sign-in"), {"email": owner.email, "password": owner.password})

    page = client.get(reverse("accounts:settings")).content.decode()

    assert "Failed sign-in" in page
    assert "Signed in" in page


def test_behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for(owner, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")

    client.post(reverse("accounts:sign-in"), {"email": owner.email, "password": "wrong"})

    event = AuditEvent.objects.get(action=AuditAction.SIGN_IN_FAILED)
    assert event.ip_address == "198.51.100.7"  # not the client-written 6.6.6.6
