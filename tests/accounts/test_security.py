import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Workspace

pytestmark = [pytest.mark.multiprocess]

ROOT = Path(__file__).resolve().parents[2]


def test_a_post_without_a_csrf_token_is_refused_and_changes_nothing(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner.user)

    response = client.post(
        reverse("accounts:workspace-create"), {"name": "Sneaky", "slug": "sneaky"}
    )

    assert response.status_code == 403
    assert b"This form has expired" in response.content
    assert not Workspace.objects.filter(slug="sneaky").exists()


def test_an_oversized_body_gets_413_and_changes_nothing(owner_client):
    response = owner_client.post(
        reverse("accounts:workspace-create"), {"name": "x" * (2 * 1024 * 1024), "slug": "huge"}
    )

    assert response.status_code == 413
    assert b"larger than" in response.content
    assert not Workspace.objects.filter(slug="huge").exists()


def test_security_headers_are_sent(client, db):
    response = client.get(reverse("accounts:sign-in"))

    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "p" * 20 + "roduction-secret-key-that-is-long-and-random-0123456789",
    "ALLOWED_HOSTS": "refract.example.com",
    "DATABASE_URL": "postgres://refract:secret@db.example.com:5432/refract",
    "REDIS_URL": "redis://redis.example.com:6379/0",
    "SITE_URL": "https://refract.example.com",
    "ENCRYPTION_KEYS": "mXWCNM3hmvJpcZ7DDA2vfTIUWAEmHIdrnV0XDH7Lz0c=",  # a Fernet key (test only)
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # A production process has none of the test run's variables (the browser tests set
    # DJANGO_ALLOW_ASYNC_UNSAFE for Playwright, which check --deploy rightly refuses).
    test_only = {"DJANGO_ALLOW_ASYNC_UNSAFE", "REFRACT_TESTING"}
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in PRODUCTION_ENV and key not in test_only
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_with_the_development_secret_key():
    env = {**PRODUCTION_ENV}
    env.pop("SECRET_KEY")

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_a_bad_setting_value_fails_loudly_with_its_name():
    result = manage("check", env={**PRODUCTION_ENV, "DEBUG": "maybe"})

    assert result.returncode != 0
    assert "DEBUG must be true or false" in result.stderr


def test_only_postgresql_is_accepted():
    result = manage("check", env={**PRODUCTION_ENV, "DATABASE_URL": "sqlite:///db.sqlite3"})

    assert result.returncode != 0
    assert "PostgreSQL only" in result.stderr
