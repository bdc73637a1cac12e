"""Logging filters named in `LOGGING` (cloud/settings.py)."""

import logging


class ClientErrorsWithoutTraceback(logging.Filter):
    """Keep Django's one-line warning for a 4xx, drop the traceback it attaches.

    Django logs `Forbidden (Permission denied): /path` with the PermissionDenied's traceback:
    a refused request is expected behaviour, and a stack trace per 403 buries real errors.
    Server errors (5xx) keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.exc_info and status is not None and status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
