import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.contrib.messages import info
from django.http import HttpRequest, HttpResponse

SIGNED_IN_AT = "signed_in_at"
LAST_SEEN = "last_seen"


class SessionTimeoutMiddleware:
    """Idle and absolute session timeouts for signed-in browser sessions.

    The session records when it began and when it was last used; past either limit it is
    deleted server-side and the user signs in again.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            session = request.session
            started = session.setdefault(SIGNED_IN_AT, now)
            last_seen = session.get(LAST_SEEN, now)
            idle = settings.SESSION_IDLE_TIMEOUT.total_seconds()
            absolute = settings.SESSION_ABSOLUTE_TIMEOUT.total_seconds()
            if now - last_seen > idle or now - started > absolute:
                logout(request)
                info(request, "Your session expired. Please sign in again.")
            elif now - last_seen >= 60:  # avoid a session write on every request
                session[LAST_SEEN] = now
            else:
                session.setdefault(LAST_SEEN, now)
        return self.get_response(request)
