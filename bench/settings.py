"""Django settings of the benchmark, built from environment variables.

run.py passes ``build()`` to ``settings.configure()``; subprocesses that need a real settings
module (``manage.py qcluster`` in the latency phase, the memory child) use
``DJANGO_SETTINGS_MODULE=bench.settings`` with the same environment, so every process of one
database run sees identical settings.

    BENCH_DB             sqlite | postgres
    BENCH_SQLITE_PATH    the SQLite file (WAL journal)
    BENCH_PG_DSN         postgresql://user@host:port/dbname (default: the local bench database)
    BENCH_PG_SCHEMA      the schema of this run (search_path)
    BENCH_EMAIL_BACKEND  locmem (default) | dummy
    BENCH_LATENCY_MS     a round trip per message in both sides' email backend (backends.py)
    BENCH_CONCURRENCY    OUTBOX["CONCURRENCY"] (unset: the library's default)
    BENCH_LATENCY_FILE   where bench.providers.LatencyProvider appends its calls
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/bench"
SENDER = "bookings@example.com"
EVENT_TYPE = "booking.confirmed"
TEMPLATE_KEY = "booking_confirmation"

EMAIL_BACKENDS = {
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}
#: The same, waiting BENCH_LATENCY_MS per message.
ROUND_TRIP_BACKENDS = {
    "locmem": "bench.backends.LocmemRoundTrip",
    "dummy": "bench.backends.DummyRoundTrip",
}


def pg_database(dsn: str, schema: str | None) -> dict[str, Any]:
    url = urlparse(dsn)
    if url.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"BENCH_PG_DSN must be a postgresql:// URL, got {dsn!r}")
    options = dict(parse_qsl(url.query))
    if schema:
        options["options"] = (options.get("options", "") + f" -c search_path={schema}").strip()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(url.path.lstrip("/")) or "postgres",
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 0,
    }


def database(env: dict[str, str]) -> dict[str, Any]:
    if env.get("BENCH_DB", "sqlite") == "postgres":
        return pg_database(env.get("BENCH_PG_DSN", DEFAULT_PG_DSN), env.get("BENCH_PG_SCHEMA"))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env.get("BENCH_SQLITE_PATH", "bench.sqlite3"),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"},
        "CONN_MAX_AGE": 0,
    }


def build(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    return {
        "DEBUG": False,
        "SECRET_KEY": "benchmark-not-secret",
        "USE_TZ": True,
        "TIME_ZONE": "UTC",
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "solo",
            "django_q",
            "django_communication",
            "outbox",
            "post_office",
            "bench.benchapp",
        ],
        "DATABASES": {"default": database(env)},
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        "EMAIL_BACKEND": (
            ROUND_TRIP_BACKENDS if float(env.get("BENCH_LATENCY_MS") or 0) else EMAIL_BACKENDS
        )[env.get("BENCH_EMAIL_BACKEND", "locmem")],
        "DEFAULT_FROM_EMAIL": SENDER,
        "TEMPLATES": [
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        "POST_OFFICE": {},  # post_office's own defaults, as in the peer script
        "COMMUNICATION": {"PROVIDERS": {"bench-latency": "bench.providers.LatencyProvider"}},
        "OUTBOX": {
            "RULES": {EVENT_TYPE: {"template_key": TEMPLATE_KEY, "message_type": "transactional"}},
            "WAKE_ON_COMMIT": True,
            **(
                {"CONCURRENCY": int(env["BENCH_CONCURRENCY"])}
                if env.get("BENCH_CONCURRENCY")
                else {}
            ),
        },
        # The ORM broker on the benchmark's own database; not sync, so emit()'s wake-up queues
        # a real task (a row in django_q_ormq) and the latency phase's qcluster runs it.
        "Q_CLUSTER": {
            "name": "bench",
            "orm": "default",
            "workers": 2,
            "timeout": 120,
            "retry": 300,
            "max_attempts": 1,
            "catch_up": False,
            "ack_failures": True,
            "log_level": "WARNING",
        },
        "LOGGING": {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "loggers": {
                "post_office": {"handlers": ["console"], "level": "WARNING"},
                "outbox": {"handlers": ["console"], "level": "WARNING"},
            },
        },
    }


globals().update(build())
