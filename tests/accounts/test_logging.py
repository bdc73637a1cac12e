"""What the console writes to its logs, and what it serves to browsers that come asking."""

import logging
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.urls import reverse

from cloud.log_filters import ClientErrorsWithoutTraceback


def test_a_403_logs_one_line_without_a_traceback(member_client, team, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = member_client.get(reverse("accounts:audit", args=["acme"]))

    assert response.status_code == 403
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert "Forbidden" in record.getMessage()
    assert record.exc_info is None and not record.exc_text


def test_a_500_still_logs_its_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("django.request", logging.ERROR, "", 0, "x", (), sys.exc_info())
    record.status_code = 500

    ClientErrorsWithoutTraceback().filter(record)

    assert record.exc_info is not None


# Run in a fresh interpreter: pytest resets warning filters around each test, a worker does not.
# The uid is faked so the check behaves as under root wherever the test runs.
ROOT_CHECK = """
import os, warnings
for name in ("getuid", "geteuid", "getgid", "getegid"):
    setattr(os, name, lambda: 0)
from celery import platforms
from cloud.celery import app
with warnings.catch_warnings(record=True) as caught:
    platforms.check_privileges(app.conf.accept_content)
print(app.conf.accept_content, [str(w.message) for w in caught])
"""


@pytest.mark.multiprocess
def test_the_worker_says_nothing_about_root_when_it_accepts_only_json():
    """The dev stack and CI run as root: Celery's pickle warning does not apply to us."""
    result = subprocess.run(
        [sys.executable, "-c", ROOT_CHECK],
        capture_output=True,
        text=True,
        cwd=settings.BASE_DIR,
        check=True,
    )

    assert result.stdout.strip() == "['json'] []", result.stdout + result.stderr


def test_the_favicon_is_served(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"].endswith("/favicon.ico")
    with open(finders.find("favicon.ico"), "rb") as icon:
        assert icon.read(4) == b"\x00\x00\x01\x00"  # an ICO file
    assert b'rel="icon"' in client.get(reverse("accounts:sign-in")).content
