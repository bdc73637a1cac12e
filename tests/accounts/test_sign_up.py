import pytest
from django.contrib.auth.hashers import make_password
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import AuditAction, AuditEvent, Membership, Role, User, Workspace

URL = reverse("accounts:sign-up")


def sign_up(client, **overrides):
    data = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "password": "analytical engine 1843",
    }
    data.update(overrides)
    return client.post(URL, data)


@pytest.fixture
def outbox(django_capture_on_commit_callbacks):
    """Run sign-up's on-commit mail, as a real request's commit would."""

    def post(client, **overrides):
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            response = sign_up(client, **overrides)
        return response, list(mail.outbox)

    return post


@pytest.mark.django_db
def test_sign_up_creates_an_unverified_account_and_mails_the_link(client, outbox):
    response, sent = outbox(client, email="Ada@Example.COM")

    user = User.objects.get()
    assert user.email == "ada@example.com"
    assert not user.is_verified
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.is_personal
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:sign-up-done")
    (message,) = sent
    assert message.to == ["ada@example.com"]
    assert "/verify-email/" in message.body
    page = client.get(response["Location"])
    assert b"Verify your email" in page.content and b"ada@example.com" in page.content
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {AuditAction.SIGN_UP, AuditAction.WORKSPACE_CREATED} <= actions


@pytest.mark.django_db
def test_sign_up_does_not_tell_whether_an_address_has_an_account(client, outbox):
    first, _ = outbox(client)
    again, again_mail = outbox(Client(), email="ADA@example.com", name="Impostor")

    # The same answer, the same page, and no session for either.
    assert (first.status_code, first["Location"]) == (again.status_code, again["Location"])
    assert "_auth_user_id" not in client.session
    assert User.objects.count() == 1
    assert Workspace.objects.count() == 1
    assert User.objects.get().name == "Ada Lovelace"
    # The owner is told instead, and nothing in that mail lets the impostor in.
    (notice,) = again_mail
    assert notice.to == ["ada@example.com"]
    assert "already has one" in notice.body
    assert "/verify-email/" not in notice.body
    assert AuditEvent.objects.filter(action=AuditAction.SIGN_UP_EXISTING).count() == 1


@pytest.mark.django_db
def test_repeated_sign_ups_on_an_existing_address_mail_its_owner_at_most_three_times(
    client, outbox
):
    outbox(client)
    sent = [outbox(Client())[1] for _ in range(5)]

    assert [len(batch) for batch in sent] == [1, 1, 1, 0, 0]


@pytest.mark.django_db
def test_the_sign_up_form_is_prefilled_with_the_address_it_is_given(client):
    page = client.get(URL, {"email": "nina@example.com", "next": "/invitations/abc/"})

    assert b'value="nina@example.com"' in page.content
    assert b'name="next" value="/invitations/abc/"' in page.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", b"too short"),
        ("password123", b"too common"),
        ("ada@example.com", b"too similar"),
        ("x" * 129, b"at most 128 characters"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(client, password, message):
    response = sign_up(client, password=password)

    assert response.status_code == 200
    assert message in response.content
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", b"Enter a valid email address"),
        ("email", "", b"This field is required"),
        ("name", "", b"This field is required"),
        ("name", "n" * 101, b"at most 100 characters"),
        ("email", "e" * 250 + "@example.com", b"at most 254 characters"),
    ],
)
def test_bad_fields_get_a_field_error_and_create_nothing(client, field, value, message):
    response = sign_up(client, **{field: value})

    assert response.status_code == 200
    assert message in response.content
    assert not User.objects.exists()


def test_passwords_are_hashed_with_argon2id(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]

    encoded = make_password("analytical engine 1843")

    assert encoded.startswith("argon2$argon2id$")


@pytest.mark.django_db
def test_the_personal_workspace_slug_is_unique_and_valid(client):
    sign_up(client, email="a@example.com", name="Ada")
    sign_up(client, email="b@example.com", name="Ada")

    slugs = list(Workspace.objects.values_list("slug", flat=True))
    assert len(set(slugs)) == 2
    assert all(3 <= len(slug) <= 40 for slug in slugs)
