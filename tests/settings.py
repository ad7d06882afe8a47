"""Settings for the test suite: SQLite by default, any database from DATABASE_URL."""

import json
import os

import dj_database_url

SECRET_KEY = "tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "solo",
    "django_q",
    "django_communication",
    "outbox",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get(
            "DATABASE_URL", "sqlite:///" + os.path.join(os.path.dirname(__file__), "test.sqlite3")
        )
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so that relay and qcluster subprocesses share the test database.
    _name = DATABASES["default"]["NAME"]
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(os.path.dirname(_name), "test_" + os.path.basename(_name))
    }

STATIC_URL = "/static/"
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

COMMUNICATION = {}
OUTBOX = {}

Q_CLUSTER = {"name": "tests", "orm": "default", "sync": True, "timeout": 30, "retry": 60}

# Subprocesses started by the tests (relays, a qcluster) read these settings too: the tests pass
# their overrides as JSON, merged over the values above.
for _name in ("COMMUNICATION", "OUTBOX", "Q_CLUSTER"):
    if os.environ.get(f"TEST_{_name}"):
        globals()[_name] = {**globals()[_name], **json.loads(os.environ[f"TEST_{_name}"])}

# Email settings for subprocesses that send through the test's SMTP server (EMAIL_HOST...).
if os.environ.get("TEST_EMAIL"):
    globals().update(json.loads(os.environ["TEST_EMAIL"]))
