import pytest
from django.contrib.auth.hashers import make_password
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


@pytest.mark.django_db
def test_sign_up_creates_the_account_a_personal_workspace_and_signs_in(client):
    response = sign_up(client, email="Ada@Example.COM")

    user = User.objects.get()
    assert user.email == "ada@example.com"
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    assert membership.workspace.is_personal
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:home")
    assert client.get(reverse("accounts:settings")).status_code == 200
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {AuditAction.SIGN_UP, AuditAction.WORKSPACE_CREATED} <= actions


@pytest.mark.django_db
def test_sign_up_with_an_existing_email_in_any_case_is_refused_and_changes_nothing(client):
    sign_up(client)
    client.logout()

    response = sign_up(client, email="ADA@example.com", name="Impostor")

    assert response.status_code == 200
    assert b"An account with this email already exists" in response.content
    assert User.objects.count() == 1
    assert Workspace.objects.count() == 1


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
    client.logout()
    sign_up(client, email="b@example.com", name="Ada")

    slugs = list(Workspace.objects.values_list("slug", flat=True))
    assert len(set(slugs)) == 2
    assert all(3 <= len(slug) <= 40 for slug in slugs)
