"""Settings for the sandbox demo project.

The database is the SQLite file ``sandbox/db.sqlite3`` (or the path in SANDBOX_DB), unless
DATABASE_URL is set and dj-database-url is installed (``pip install dj-database-url``; it is not
needed otherwise). Not for production: the secret key is public and DEBUG is on.
"""

import os
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "sandbox-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ROOT_URLCONF = "sandbox.urls"
WSGI_APPLICATION = "sandbox.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "solo",
    "django_q",
    "django_communication",
    "outbox",
    "bookings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict:
    path = os.environ.get("SANDBOX_DB") or BASE_DIR / "db.sqlite3"
    default = {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    url = os.environ.get("DATABASE_URL")
    if not url:
        return default
    try:
        import dj_database_url
    except ImportError:
        warnings.warn(
            "DATABASE_URL is set but dj-database-url is not installed; the sandbox uses "
            f"{default['NAME']}. pip install dj-database-url to use DATABASE_URL.",
            stacklevel=1,
        )
        return default
    return dj_database_url.parse(url)


DATABASES = {"default": _database()}

# Attachments are stored here (django_communication's ATTACHMENT_STORAGE is "default"): beside
# the database, so SANDBOX_DB=/tmp/x.sqlite3 keeps them in /tmp/media.
MEDIA_ROOT = Path(os.environ.get("SANDBOX_DB") or BASE_DIR / "db.sqlite3").parent / "media"

STATIC_URL = "static/"

# Everything goes to the console provider by default (see the admin's communication settings).
COMMUNICATION = {"DEFAULT_PHONE_REGION": "GB"}

# django-q2 with the database as broker, so `manage.py qcluster` needs no Redis.
Q_CLUSTER = {"name": "sandbox", "orm": "default", "workers": 2, "timeout": 30, "retry": 60}

# What the booking flow's events send (bookings/services.py emits them in its transactions).
OUTBOX = {
    "RULES": {
        "booking.confirmed": {
            "template_key": "booking_confirmation",
            "message_type": "transactional",
        },
        "booking.cancelled": [  # a list fans out: one email and one SMS per cancellation
            {"template_key": "booking_cancelled", "channel": "email"},
            {"template_key": "booking_cancelled", "channel": "sms"},
        ],
    },
    # No cluster runs in the demo: `manage.py demo` runs the relay itself (drain_outbox) after
    # its transactions, so a commit need not queue a django-q2 drain task that nothing would
    # take. With `manage.py qcluster` running, set this to True (the default) and events go out
    # moments after each commit; `manage.py drain_outbox --loop` works with it off.
    "WAKE_ON_COMMIT": False,
}
