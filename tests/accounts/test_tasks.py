from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.tasks import purge_expired
from tests.support.worker import celery_worker, wait_until

pytestmark = [pytest.mark.multiprocess]


def make_sessions() -> tuple[str, str]:
    expired, live = SessionStore(), SessionStore()
    expired.create()
    live.create()
    Session.objects.filter(session_key=expired.session_key).update(
        expire_date=timezone.now() - timedelta(minutes=1)
    )
    return expired.session_key, live.session_key


@pytest.mark.django_db
def test_purge_expired_deletes_only_expired_sessions():
    _expired, live = make_sessions()

    assert purge_expired() == 1
    assert purge_expired() == 0  # idempotent

    assert set(Session.objects.values_list("session_key", flat=True)) == {live}


@pytest.mark.django_db(transaction=True)
def test_purge_expired_runs_in_a_real_worker():
    expired, live = make_sessions()

    with celery_worker():
        purge_expired.delay()
        gone = wait_until(lambda: not Session.objects.filter(session_key=expired).exists())

    assert gone
    assert Session.objects.filter(session_key=live).exists()
