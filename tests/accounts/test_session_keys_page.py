from django.urls import reverse

from accounts import session_keys
from accounts.models import SessionKey
from tests.conftest import client_for

PAGE = reverse("accounts:session-keys")


def test_a_key_created_in_the_console_is_shown_once(owner_client, owner):
    created = owner_client.post(PAGE, {"name": "GitHub Actions"})

    key = SessionKey.objects.get(user=owner.user)
    token = session_keys.token_for(key)
    assert token in created.content.decode()
    assert key.origin == SessionKey.Origin.CONSOLE
    listed = owner_client.get(PAGE).content.decode()
    assert "GitHub Actions" in listed
    assert token not in listed


def test_an_empty_or_huge_name_is_refused(owner_client, owner):
    for name in ("", "n" * 201):
        response = owner_client.post(PAGE, {"name": name})
        assert response.status_code == 400
    assert not SessionKey.objects.exists()


def test_revoking_someone_elses_key_is_404(owner, outsider):
    key, _ = session_keys.issue(owner.user, name="mine", origin=SessionKey.Origin.CONSOLE)

    response = client_for(outsider).post(reverse("accounts:session-key-revoke", args=[key.id]))

    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_revoke_one_and_revoke_all(owner_client, owner):
    first, _ = session_keys.issue(owner.user, name="one", origin=SessionKey.Origin.CONSOLE)
    session_keys.issue(owner.user, name="two", origin=SessionKey.Origin.CONSOLE)

    owner_client.post(reverse("accounts:session-key-revoke", args=[first.id]))
    assert SessionKey.objects.live().count() == 1
    owner_client.post(reverse("accounts:session-keys-revoke-all"))
    assert SessionKey.objects.live().count() == 0
    assert b"No CLI sessions or keys" in owner_client.get(PAGE).content


def test_a_password_change_offers_to_revoke_every_key(owner_client, owner):
    session_keys.issue(owner.user, name="laptop", origin=SessionKey.Origin.CLI_LOGIN)
    form = owner_client.get(reverse("accounts:password-change")).content.decode()
    assert "Also revoke all my CLI sessions and keys" in form

    owner_client.post(
        reverse("accounts:password-change"),
        {
            "old_password": owner.password,
            "new_password1": "another long passphrase",
            "new_password2": "another long passphrase",
            "revoke_keys": "on",
        },
    )

    assert SessionKey.objects.live().count() == 0
