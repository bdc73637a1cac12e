from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts import cli_login


@shared_task(name="accounts.purge_expired", acks_late=True, time_limit=300)
def purge_expired() -> int:
    """Delete expired browser sessions (idempotent; run hourly by beat)."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted


@shared_task(name="accounts.revoke_uncollected_cli_keys", acks_late=True, time_limit=300)
def revoke_uncollected_cli_keys() -> int:
    """Revoke keys minted for CLI logins whose CLI went away before collecting them (every
    minute by beat; idempotent)."""
    return cli_login.revoke_uncollected()
