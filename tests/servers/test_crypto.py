"""Secrets at rest: encrypted with ENCRYPTION_KEYS, readable after a rotation, never plaintext."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from cloud import crypto
from servers import services
from servers.models import Server

ROOT = Path(__file__).resolve().parents[2]
PEM = "-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n"


def test_a_secret_round_trips_and_is_not_stored_in_the_clear():
    token = crypto.encrypt("s3cret-value")

    assert "s3cret" not in token
    assert crypto.decrypt(token) == "s3cret-value"
    assert crypto.encrypt("s3cret-value") != token  # a fresh IV every time


def test_a_value_encrypted_with_an_unknown_key_is_a_clear_error(settings):
    stranger = Fernet(Fernet.generate_key()).encrypt(b"x").decode()

    with pytest.raises(crypto.DecryptionError, match="ENCRYPTION_KEYS"):
        crypto.decrypt(stranger)


@pytest.mark.parametrize("raw", ["", "not-a-key", f"{Fernet.generate_key().decode()},short"])
def test_bad_keys_are_refused_with_the_variable_name(raw):
    with pytest.raises(ImproperlyConfigured, match="ENCRYPTION_KEYS"):
        crypto.parse_keys(raw)


@pytest.mark.multiprocess
@pytest.mark.parametrize("value", [None, "not-a-fernet-key"])
def test_production_refuses_to_start_without_valid_encryption_keys(value):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DEBUG", "REFRACT_TESTING", "ENCRYPTION_KEYS", "ENCRYPTION_KEYS_FILE"}
    }
    env.update(SECRET_KEY="x" * 60, ALLOWED_HOSTS="console.example.com")
    if value is not None:
        env["ENCRYPTION_KEYS"] = value
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0
    assert "ENCRYPTION_KEYS" in result.stderr


@pytest.fixture
def stored_server(team, owner) -> Server:
    server = Server(
        workspace=team,
        kind=Server.Kind.SELF_HOSTED,
        name="mine",
        endpoint="http://127.0.0.1:4466",
        created_by=owner.user,
    )
    server.set_private_key(PEM)
    server.set_management_secret("management-secret-123")
    server.save()
    return server


def stored_columns(server: Server) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT private_key, management_secret FROM servers_server WHERE id = %s", [server.id]
        )
        return cursor.fetchone()


def test_the_database_holds_only_ciphertext(stored_server):
    private_key, secret = stored_columns(stored_server)

    assert "PRIVATE KEY" not in private_key
    assert "management-secret" not in secret
    fresh = Server.objects.get(id=stored_server.id)
    assert fresh.private_key_pem == PEM
    assert fresh.management_secret_value == "management-secret-123"


def test_keys_rotate_prepend_reencrypt_drop(settings, stored_server):
    old = settings.ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()

    settings.ENCRYPTION_KEYS = [new, old]  # 1. prepend: old values still read
    assert Server.objects.get(id=stored_server.id).private_key_pem == PEM
    call_command("reencrypt_secrets")  # 2. re-encrypt with the new key
    settings.ENCRYPTION_KEYS = [new]  # 3. drop the old key

    fresh = Server.objects.get(id=stored_server.id)
    assert fresh.private_key_pem == PEM
    assert fresh.management_secret_value == "management-secret-123"
    settings.ENCRYPTION_KEYS = [old]  # the old key alone no longer opens them
    with pytest.raises(crypto.DecryptionError):
        Server.objects.get(id=stored_server.id).private_key_pem  # noqa: B018


def test_a_sandbox_private_key_is_stored_encrypted(
    regions, team, owner, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        server = services.provision_sandbox(owner.user, team, "local")

    private_key, _ = stored_columns(server)
    assert "PRIVATE KEY" not in private_key
    assert "BEGIN PRIVATE KEY" in Server.objects.get(id=server.id).private_key_pem
    assert "BEGIN PUBLIC KEY" in server.public_key_pem


def test_reencrypting_with_a_missing_key_stops_with_the_row_named(settings, stored_server):
    from django.core.management.base import CommandError

    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key dropped too early

    with pytest.raises(CommandError, match=f"servers.Server {stored_server.pk}"):
        call_command("reencrypt_secrets")
