"""Encryption at rest for the secrets the console keeps (private keys, management secrets).

`ENCRYPTION_KEYS` holds comma-separated Fernet keys: the first encrypts, every one decrypts
(`MultiFernet`), so a key is rotated by prepending a new one, re-encrypting every stored value
(`manage.py reencrypt_secrets`) and then dropping the old key. Values live in
`EncryptedTextField` columns as Fernet tokens; the model reads them through `decrypt`, so a
plaintext secret is never loaded by accident (the admin, `values()` and logs see ciphertext).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """A stored value that none of the configured keys opens (a key dropped too early?)."""


def parse_keys(raw: str) -> list[str]:
    """The keys of `ENCRYPTION_KEYS`, each checked to be a Fernet key (32 url-safe base64 bytes)."""
    keys = [key.strip() for key in raw.split(",") if key.strip()]
    if not keys:
        raise ImproperlyConfigured("ENCRYPTION_KEYS must hold at least one Fernet key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"ENCRYPTION_KEYS: key {position} is not a Fernet key (make one with "
                '`python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`)'
            ) from None
    return keys


def _fernet() -> MultiFernet:
    # Built per call from settings (a few microseconds), so a rotation in settings takes effect
    # at once and tests can override the keys.
    return MultiFernet([Fernet(key) for key in settings.ENCRYPTION_KEYS])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _opened(_fernet().decrypt, token)


def rotate(token: str) -> str:
    """The same secret encrypted with the first key (what `reencrypt_secrets` writes back)."""
    return _opened(_fernet().rotate, token)


def _opened(operation: Callable[[bytes], bytes], token: str) -> str:
    try:
        return operation(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any key in ENCRYPTION_KEYS"
        ) from None


class EncryptedTextField(models.TextField):
    """A text column that holds a Fernet token, never plaintext.

    It converts nothing by itself: models write `encrypt(...)` and read `decrypt(...)`, so
    reading a row never needs the keys and a missing key fails only where the secret is used.
    `reencrypt_secrets` finds every column of this type.
    """
