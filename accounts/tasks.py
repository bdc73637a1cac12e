from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone


@shared_task(name="accounts.purge_expired", acks_late=True, time_limit=300)
def purge_expired() -> int:
    """Delete expired browser sessions (idempotent; run hourly by beat)."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted
