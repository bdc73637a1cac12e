"""Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS (key rotation)."""

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from cloud import crypto


class Command(BaseCommand):
    help = (
        "Re-encrypt every EncryptedTextField value with the first key of ENCRYPTION_KEYS. "
        "Rotation: prepend a new key, run this, then drop the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        for model in apps.get_models():
            fields = [
                f.name for f in model._meta.get_fields() if isinstance(f, crypto.EncryptedTextField)
            ]
            if not fields:
                continue
            with transaction.atomic():
                rows = model._default_manager.select_for_update().only("pk", *fields)
                for row in rows.iterator():
                    changed = {}
                    for name in fields:
                        value = getattr(row, name)
                        if value:
                            try:
                                changed[name] = crypto.rotate(value)
                            except crypto.DecryptionError as error:
                                raise CommandError(
                                    f"{model._meta.label} {row.pk} {name}: {error}"
                                ) from None
                    if changed:
                        model._default_manager.filter(pk=row.pk).update(**changed)
                        total += len(changed)
        self.stdout.write(f"re-encrypted {total} secret(s) with the first key")
