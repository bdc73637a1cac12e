import re

from django.core import mail
from django.urls import reverse

from accounts.models import AuditAction, AuditEvent


def test_changing_the_password_keeps_the_session_and_is_audited(owner_client, owner):
    response = owner_client.post(
        reverse("accounts:password-change"),
        {
            "old_password": owner.password,
            "new_password1": "a brand new passphrase",
            "new_password2": "a brand new passphrase",
        },
    )

    assert response.status_code == 302
    owner.user.refresh_from_db()
    assert owner.user.check_password("a brand new passphrase")
    assert owner_client.get(reverse("accounts:settings")).status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.PASSWORD_CHANGED, user=owner.user).exists()


def test_a_wrong_old_password_changes_nothing(owner_client, owner):
    response = owner_client.post(
        reverse("accounts:password-change"),
        {
            "old_password": "wrong",
            "new_password1": "a brand new passphrase",
            "new_password2": "a brand new passphrase",
        },
    )

    assert response.status_code == 200
    assert b"Your old password was entered incorrectly" in response.content
    owner.user.refresh_from_db()
    assert owner.user.check_password(owner.password)


def _reset_link() -> str:
    (message,) = mail.outbox
    return re.search(r"https?://\S+/password-reset/\S+/", message.body).group(0)


def test_a_forgotten_password_is_reset_by_a_single_use_email_link(client, owner):
    response = client.post(reverse("accounts:password-reset"), {"email": owner.email.upper()})
    assert response.status_code == 302
    path = "/" + _reset_link().split("/", 3)[3]

    form_page = client.get(path, follow=True)
    assert b"Choose a new password" in form_page.content
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "reset passphrase here", "new_password2": "reset passphrase here"},
    )

    assert done.status_code == 302
    owner.user.refresh_from_db()
    assert owner.user.check_password("reset passphrase here")
    assert AuditEvent.objects.filter(action=AuditAction.PASSWORD_RESET, user=owner.user).exists()
    reused = client.get(path, follow=True)
    assert b"This reset link is not valid" in reused.content


def test_a_reset_for_an_unknown_email_looks_the_same_and_sends_nothing(client, db):
    response = client.post(reverse("accounts:password-reset"), {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:password-reset-sent")
    assert mail.outbox == []
