"""Refract's one settings module.

Everything comes from the environment through the small typed helpers in `cloud.env`.
Production is the default (`DEBUG` unset or false) and refuses to start without the values
that matter (`SECRET_KEY`, `ALLOWED_HOSTS`, `DATABASE_URL`, `REDIS_URL`); the dev commands set
`DEBUG=true`, which brings development defaults.
"""

import base64
import hashlib
import re
from datetime import timedelta
from pathlib import Path

from cloud.crypto import parse_keys as parse_encryption_keys
from cloud.env import (
    ImproperlyConfigured,
    database_from_url,
    env_bool,
    env_float,
    env_floats,
    env_int,
    env_list,
    env_origins,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Off unless asked for: a forgotten variable must not run production in debug mode. The dev
# commands (`make run`, `make test`, `make exec`, i.e. cloud/devstack.py) set DEBUG=true.
DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("REFRACT_TESTING", False)

_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-8f3a1c9e2b7d"  # noqa: S105 (refused when DEBUG is off)
SECRET_KEY = env_secret("SECRET_KEY", _DEV_SECRET_KEY if DEBUG else None)
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to at least 50 random characters in production"
    )

# Encryption at rest (servers' private keys and management secrets): comma-separated Fernet
# keys, the first encrypts, all decrypt. Rotation: see README. Development derives one from
# the (development) SECRET_KEY; production must set it.
_DEV_ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"refract-dev-encryption:" + SECRET_KEY.encode()).digest()
).decode()
ENCRYPTION_KEYS = parse_encryption_keys(
    env_secret("ENCRYPTION_KEYS", _DEV_ENCRYPTION_KEY if DEBUG else None)
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the console's host names in production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# How many reverse proxies (load balancer, ingress) append to X-Forwarded-For in front of us.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# The public origin of the console, used in emails and in URLs shown to CLIs.
SITE_URL = env_str("SITE_URL", "http://localhost:3000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",  # for operators (staff): sandbox servers and the like
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    "servers",
    "compat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "cloud.middleware.RequestSizeLimitMiddleware",
    "cloud.middleware.ApiNotFoundMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.middleware.SessionTimeoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

if not DEBUG:
    # Serves collected static files in production; `runserver` serves them in development.
    MIDDLEWARE.insert(2, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "cloud.urls"
WSGI_APPLICATION = "cloud.wsgi.application"
ASGI_APPLICATION = "cloud.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
            ],
        },
    },
]

# PostgreSQL only. `make run` and `make test` set DATABASE_URL to an embedded server when it
# is unset; a bare `manage.py` without it is a configuration error, not a silent SQLite.
DATABASES = {"default": database_from_url(env_secret("DATABASE_URL", None))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_secret("REDIS_URL", None)
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "refract")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
LOGIN_URL = "accounts:sign-in"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:sign-in"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    # Argon2id costs ~50 ms a hash by design; the test suite hashes hundreds of passwords.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 8},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "accounts.validators.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
]
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)

# Sign-in throttling: soft back-off after a few failures, a hard ceiling per hour.
SIGN_IN_BACKOFF_AFTER = env_int("SIGN_IN_BACKOFF_AFTER", 5)
SIGN_IN_ADDRESS_BACKOFF_AFTER = env_int("SIGN_IN_ADDRESS_BACKOFF_AFTER", 20)
SIGN_IN_MAX_FAILURES_PER_ACCOUNT = env_int("SIGN_IN_MAX_FAILURES_PER_ACCOUNT", 100)
SIGN_IN_MAX_FAILURES_PER_ADDRESS = env_int("SIGN_IN_MAX_FAILURES_PER_ADDRESS", 300)
SIGN_IN_MAX_BACKOFF_SECONDS = env_int("SIGN_IN_MAX_BACKOFF_SECONDS", 60)

# Sessions live in the database so sign-out deletes them server-side.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_IDLE_TIMEOUT = timedelta(seconds=env_int("SESSION_IDLE_TIMEOUT", 12 * 3600))
SESSION_ABSOLUTE_TIMEOUT = timedelta(seconds=env_int("SESSION_ABSOLUTE_TIMEOUT", 7 * 24 * 3600))
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_TIMEOUT.total_seconds())
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True

INVITATION_TTL = timedelta(days=7)
# How long an email verification link works; a signed-in user can ask for a new one.
EMAIL_VERIFICATION_TTL = timedelta(seconds=env_int("EMAIL_VERIFICATION_TTL", 3 * 24 * 3600))

# CLI session keys (JWTs). Signed with a key derived from SECRET_KEY unless one is given.
SESSION_KEY_SIGNING_KEY = env_secret("SESSION_KEY_SIGNING_KEY", "")
SESSION_KEY_TTL = timedelta(days=env_int("SESSION_KEY_TTL_DAYS", 30))
CLI_LOGIN_TTL = timedelta(seconds=env_int("CLI_LOGIN_TTL", 600))
CLI_LOGIN_POLL_INTERVAL = env_int("CLI_LOGIN_POLL_INTERVAL", 5)
CLI_LOGIN_MAX_WRONG_CODES = 5
# How long a Prisma CLI poll may wait for the user's click (a long poll; see cli_login.py),
# kept a second under the Redis socket timeout; at most this many held polls per address.
CLI_LOGIN_HOLD_SECONDS = float(env_int("CLI_LOGIN_HOLD_SECONDS", 2))
CLI_LOGIN_MAX_HOLDS_PER_ADDRESS = env_int("CLI_LOGIN_MAX_HOLDS_PER_ADDRESS", 4)
# Login requests started per client address, by the REST API and the cloud API together.
CLI_LOGIN_START_RATE = env_str("CLI_LOGIN_START_RATE", "20/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)", CLI_LOGIN_START_RATE):
    raise ImproperlyConfigured("CLI_LOGIN_START_RATE must look like 20/min (count/s|min|h|day)")
CLOUD_API_RATE_PER_MINUTE = env_int("CLOUD_API_RATE_PER_MINUTE", 600)

# Sandbox regions: `name=origin` pairs (`eu1=https://eu1.sandbox.example.com,...`), each a
# runtime whose `managementPublicKey` is the platform's public key; the platform's private key
# (PEM, `PLATFORM_PRIVATE_KEY` or `PLATFORM_PRIVATE_KEY_FILE`) signs their management tokens.
SANDBOX_REGIONS = env_origins("SANDBOX_REGIONS")
PLATFORM_PRIVATE_KEY = env_secret("PLATFORM_PRIVATE_KEY", "")
# Private servers: the platform runtime that serves them (its internal origin; the console
# registers servers through its operator API, signed with the platform's key, and reaches their
# management APIs there under each server's host name), and the template of a private server's
# public endpoint: `{server}` becomes `<name>-<workspace>`, and the endpoint's host name is the
# one the runtime answers it on (DNS points `*.servers.example.com` at the runtime). Without
# PRIVATE_SERVER_RUNTIME the console offers no private servers.
PRIVATE_SERVER_RUNTIME = env_str("PRIVATE_SERVER_RUNTIME", "").rstrip("/")
PRIVATE_SERVER_ENDPOINT = env_str("PRIVATE_SERVER_ENDPOINT", "https://{server}.servers.example.com")
# Database servers private servers may not use (`host:port`, comma-separated; empty allows any):
# by default the console's own, whose roles a tenant must never reach through the runtime.
_OWN_DATABASE = DATABASES["default"]
PRIVATE_DATABASE_DENY = env_list(
    "PRIVATE_DATABASE_DENY",
    [f"{_OWN_DATABASE.get('HOST') or 'localhost'}:{_OWN_DATABASE.get('PORT') or 5432}"],
)
# Calls to servers' management APIs; provisioning runs whose heartbeat is older than
# SERVER_STALE_SECONDS are retried by the reaper, up to SERVER_PROVISION_ATTEMPTS claims.
SERVER_MANAGEMENT_TIMEOUT = env_int("SERVER_MANAGEMENT_TIMEOUT", 10)
SERVER_STALE_SECONDS = env_int("SERVER_STALE_SECONDS", 120)
SERVER_PROVISION_ATTEMPTS = env_int("SERVER_PROVISION_ATTEMPTS", 3)
# The periodic status check (every minute): each server's serverInfo within this many seconds,
# this many servers at a time.
SERVER_HEALTH_TIMEOUT = env_int("SERVER_HEALTH_TIMEOUT", 5)
SERVER_HEALTH_CONCURRENCY = env_int("SERVER_HEALTH_CONCURRENCY", 8)
# Deploys: a worker polls the server's migrationStatus every DEPLOY_POLL_SECONDS; a server that
# cannot be reached is tried again after each of DEPLOY_RETRY_DELAYS (seconds), then the deploy
# fails; a migration that does not move for DEPLOY_STALL_SECONDS fails as stuck; a run without
# heartbeat for DEPLOY_STALE_SECONDS is retried by the reaper, up to DEPLOY_ATTEMPTS claims.
DEPLOY_POLL_SECONDS = env_float("DEPLOY_POLL_SECONDS", 0.25)
DEPLOY_RETRY_DELAYS = env_floats("DEPLOY_RETRY_DELAYS", [1, 2, 4, 8])
DEPLOY_STALL_SECONDS = env_int("DEPLOY_STALL_SECONDS", 300)
DEPLOY_STALE_SECONDS = env_int("DEPLOY_STALE_SECONDS", 60)
DEPLOY_ATTEMPTS = env_int("DEPLOY_ATTEMPTS", 3)

# Request size limits: forms are small; anything bigger is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    # Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # The header alone submits nothing: a domain joins the preload list only when its owner asks.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Email: printed to the console unless an SMTP host is configured.
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Refract <no-reply@localhost>")
EMAIL_HOST = env_str("EMAIL_HOST", "")
if EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cloud.api.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["cloud.net.ScopedThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "api": env_str("API_RATE", "1200/min"),
        "cli_login_poll": env_str("CLI_LOGIN_POLL_RATE", "120/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Refract API",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "DESCRIPTION": "Accounts, workspaces, servers, services and CLI session keys.",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "cloud.api.document_errors",
    ],
    "VERSION": "1",
    # Several models have a `status` or `origin` with choices of their own: each gets a name.
    # A service's origin and a deploy's source are one choice set, `servers.models.Origin`.
    "ENUM_NAME_OVERRIDES": {
        "ServerStatusEnum": "servers.models.Server.Status",
        "ServiceStatusEnum": "servers.models.Service.Status",
        "DeployStatusEnum": "servers.models.Deploy.Status",
        "OriginEnum": "servers.models.Origin",
        "SessionKeyOriginEnum": "accounts.models.SessionKey.Origin",
    },
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "default")
CELERY_BEAT_SCHEDULE = {
    "purge-expired-sessions": {
        "task": "accounts.purge_expired",
        "schedule": timedelta(hours=1),
    },
    "revoke-uncollected-cli-keys": {
        "task": "accounts.revoke_uncollected_cli_keys",
        "schedule": timedelta(minutes=1),
    },
    "reap-stale-servers": {"task": "servers.reap_stale", "schedule": timedelta(minutes=1)},
    "reap-stale-deploys": {"task": "servers.reap_deploys", "schedule": timedelta(seconds=20)},
    "reconcile-services": {  # deploys made by the Prisma CLI appear in the history
        "task": "servers.reconcile",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    "check-servers": {  # a check left queued past the next one is dropped, not piled up
        "task": "servers.check_status",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_4xx_traceback": {"()": "cloud.log_filters.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["no_4xx_traceback"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["no_4xx_traceback"]},
    },
}
