import re

import pytest
from django.urls import reverse

from accounts.models import AuditAction, AuditEvent, Membership, Role, Workspace


def test_a_user_creates_a_workspace_and_owns_it(owner_client, owner):
    response = owner_client.post(
        reverse("accounts:workspace-create"), {"name": "Platform Team", "slug": "platform"}
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:workspace", args=["platform"])
    workspace = Workspace.objects.get(slug="platform")
    assert Membership.objects.get(workspace=workspace, user=owner.user).role == Role.OWNER
    assert AuditEvent.objects.filter(
        action=AuditAction.WORKSPACE_CREATED, workspace=workspace
    ).exists()


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("Has Spaces", b"lower-case letters"),
        ("UPPER", b"lower-case letters"),
        ("ab", b"lower-case letters"),
        ("-leading", b"lower-case letters"),
        ("trailing-", b"lower-case letters"),
        ("double--hyphen", b"lower-case letters"),
        ("emoji-\xf0\x9f\x98\x80".encode().decode("utf-8", "ignore"), b"lower-case letters"),
        ("api", b"is reserved"),
        ("acme", b"That slug is taken"),
        ("s" * 41, b"at most 40 characters"),
    ],
)
def test_invalid_slugs_are_refused_with_a_clear_message(owner_client, slug, message):
    before = Workspace.objects.count()

    response = owner_client.post(reverse("accounts:workspace-create"), {"name": "X", "slug": slug})

    assert response.status_code == 200
    assert message in response.content
    assert Workspace.objects.count() == before


def test_an_oversized_name_is_refused(owner_client):
    response = owner_client.post(
        reverse("accounts:workspace-create"), {"name": "n" * 65, "slug": "long-name"}
    )

    assert b"at most 64 characters" in response.content
    assert not Workspace.objects.filter(slug="long-name").exists()


def test_the_switcher_lists_every_workspace_of_the_user(owner_client, owner):
    response = owner_client.get(reverse("accounts:workspace", args=["acme"]))

    switcher = response.content.decode().split('data-testid="workspace-switcher"')[1]
    for membership in Membership.objects.filter(user=owner.user):
        assert membership.workspace.name.replace("'", "&#x27;") in switcher


def test_empty_states_say_what_to_do_next(owner_client):
    servers = owner_client.get(reverse("accounts:servers", args=["acme"]))
    services = owner_client.get(reverse("accounts:services", args=["acme"]))

    assert b"No servers yet: provision a sandbox" in servers.content
    assert b"No services yet" in services.content


def test_owners_rename_and_members_cannot(owner_client, member_client, team):
    url = reverse("accounts:workspace-settings", args=["acme"])

    member_client.post(url, {"name": "Hijacked"})
    team.refresh_from_db()
    assert team.name == "Acme"

    owner_client.post(url, {"name": "Acme Corp"})
    team.refresh_from_db()
    assert team.name == "Acme Corp"


def test_only_owners_delete_a_workspace_after_typing_its_slug(owner_client, admin_client, team):
    url = reverse("accounts:workspace-delete", args=["acme"])

    admin_client.post(url, {"confirm": "acme"})
    owner_client.post(url, {"confirm": "wrong"})
    assert Workspace.objects.filter(slug="acme").exists()

    response = owner_client.post(url, {"confirm": "acme"})
    assert response.status_code == 302
    assert not Workspace.objects.filter(slug="acme").exists()


def test_a_personal_workspace_cannot_be_deleted(owner_client, owner):
    personal = Workspace.objects.get(is_personal=True, created_by=owner.user)

    owner_client.post(
        reverse("accounts:workspace-delete", args=[personal.slug]), {"confirm": personal.slug}
    )

    assert Workspace.objects.filter(pk=personal.pk).exists()


# Roles -------------------------------------------------------------------------------------


def _member_id(workspace: Workspace, email: str) -> int:
    return Membership.objects.get(workspace=workspace, user__email=email).pk


def test_a_member_cannot_remove_the_owner(member_client, team):
    member_client.post(
        reverse("accounts:member-remove", args=["acme"]),
        {"member": _member_id(team, "owner@example.com")},
    )

    assert team.memberships.filter(user__email="owner@example.com").exists()


def test_an_admin_removes_a_member_but_not_an_owner(admin_client, team):
    url = reverse("accounts:member-remove", args=["acme"])

    admin_client.post(url, {"member": _member_id(team, "owner@example.com")})
    admin_client.post(url, {"member": _member_id(team, "member@example.com")})

    emails = set(team.memberships.values_list("user__email", flat=True))
    assert emails == {"owner@example.com", "admin@example.com"}
    assert AuditEvent.objects.filter(action=AuditAction.MEMBER_REMOVED, workspace=team).count() == 1


def test_only_owners_change_roles(owner_client, admin_client, team):
    url = reverse("accounts:member-role", args=["acme"])
    member = _member_id(team, "member@example.com")

    admin_client.post(url, {"member": member, "role": "admin"})
    assert Membership.objects.get(pk=member).role == Role.MEMBER

    owner_client.post(url, {"member": member, "role": "admin"})
    assert Membership.objects.get(pk=member).role == Role.ADMIN
    event = AuditEvent.objects.get(action=AuditAction.MEMBER_ROLE_CHANGED)
    assert event.detail == {"old": "member", "new": "admin"}


def test_an_unknown_role_changes_nothing(owner_client, team):
    member = _member_id(team, "member@example.com")

    owner_client.post(
        reverse("accounts:member-role", args=["acme"]), {"member": member, "role": "emperor"}
    )

    assert Membership.objects.get(pk=member).role == Role.MEMBER


def test_the_last_owner_cannot_leave_or_step_down(owner_client, team):
    owner_id = _member_id(team, "owner@example.com")

    leave = owner_client.post(
        reverse("accounts:member-remove", args=["acme"]), {"member": owner_id}, follow=True
    )
    step_down = owner_client.post(
        reverse("accounts:member-role", args=["acme"]),
        {"member": owner_id, "role": "member"},
        follow=True,
    )

    assert b"The last owner cannot leave" in leave.content
    assert b"at least one owner" in step_down.content
    assert Membership.objects.get(pk=owner_id).role == Role.OWNER


def test_an_owner_can_leave_once_there_is_another_owner(owner_client, team):
    owner_client.post(
        reverse("accounts:member-role", args=["acme"]),
        {"member": _member_id(team, "admin@example.com"), "role": "owner"},
    )

    owner_client.post(
        reverse("accounts:member-remove", args=["acme"]),
        {"member": _member_id(team, "owner@example.com")},
    )

    assert not team.memberships.filter(user__email="owner@example.com").exists()
    assert AuditEvent.objects.filter(action=AuditAction.MEMBER_LEFT, workspace=team).exists()


def test_a_member_can_leave(member_client, team):
    response = member_client.post(
        reverse("accounts:member-remove", args=["acme"]),
        {"member": _member_id(team, "member@example.com")},
    )

    assert response["Location"] == reverse("accounts:workspaces")
    assert not team.memberships.filter(user__email="member@example.com").exists()
    assert member_client.get(reverse("accounts:workspace", args=["acme"])).status_code == 404


def test_the_members_page_lists_members_without_n_plus_one(
    owner_client, team, django_assert_max_num_queries
):
    from tests.conftest import make_user

    for index in range(10):
        Membership.objects.create(
            workspace=team, user=make_user(f"extra{index}@example.com"), role=Role.MEMBER
        )

    with django_assert_max_num_queries(12):
        response = owner_client.get(reverse("accounts:members", args=["acme"]))

    assert response.status_code == 200
    assert response.content.count(b"data-email=") == 13


def test_a_workspace_left_without_a_slug_gets_one_made_from_its_name(owner_client, team):
    page = owner_client.get(reverse("accounts:workspace-create"))
    assert b'data-slug-from="id_name"' in page.content  # refract.js suggests it as you type

    response = owner_client.post(
        reverse("accounts:workspace-create"), {"name": "Acme Data Platform", "slug": ""}
    )

    assert response["Location"] == reverse("accounts:workspace", args=["acme-data-platform"])
    assert Workspace.objects.filter(slug="acme-data-platform", name="Acme Data Platform").exists()


def test_the_settings_page_names_each_section_once(owner_client, team):
    page = owner_client.get(reverse("accounts:workspace-settings", args=["acme"])).content.decode()

    headings_and_labels = re.findall(r"<(?:h2|label)[^>]*>([^<]+)<", page)
    assert headings_and_labels.count("Name") == 1
