import os
import warnings

from celery import Celery
from celery.exceptions import SecurityWarning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cloud.settings")

# The dev stack, CI and many containers run as root. Celery's warning about it concerns pickle,
# which this app never accepts (CELERY_ACCEPT_CONTENT is JSON only); were pickle ever allowed,
# Celery would still refuse to start as root, whatever this filter says.
warnings.filterwarnings(
    "ignore", message=r"You're running the worker with superuser", category=SecurityWarning
)

app = Celery("refract")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
