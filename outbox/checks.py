"""System checks for ``settings.OUTBOX`` (``manage.py check``).

outbox.E001  OUTBOX is not a dict, or has unknown names
outbox.E002  RULES is not a dict of event type -> rule or list of rules, or uses the event type
             reserved for deferred send() calls ("django_communication.send")
outbox.E003  a rule is not a dict, or has unknown keys
outbox.E004  a rule's template_key is missing or empty
outbox.E005  a rule names an unknown channel
outbox.E006  a rule names an unknown message type
outbox.E007  an event type lists the same rule twice
outbox.E008  a numeric setting is out of range, or a flag is not a bool
outbox.E009  HEALTH_TOKEN is not None or a string of at least 32 characters without spaces
outbox.E010  HEALTH_LAGGING_STATUS is not 200 or 503
outbox.E011  django-q2's broker cannot work (a package it needs is missing, an unknown ORM alias)
outbox.E012  a rule names a language that is not in settings.LANGUAGES
outbox.E013  CONCURRENCY is not a whole number from 1 to 64
outbox.W001  WAKE_ON_COMMIT is on but django_q is not in INSTALLED_APPS: nothing to wake

Checks that read the database (a drain schedule, templates for the rules) are in
database_checks.py.
"""

from __future__ import annotations

import importlib
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Warning

from django_communication.choices import Channel, MessageType
from django_communication.conf import MAX_CONCURRENCY
from django_communication.languages import supported

from .conf import DEFAULTS, DEFERRED_SEND, RULE_KEYS, Rule, outbox_settings

POSITIVE = (
    "MAX_ATTEMPTS",
    "BATCH_SIZE",
    "LEASE_SECONDS",
    "SCHEDULE_MINUTES",
    "LAG_THRESHOLD_SECONDS",
)
NON_NEGATIVE = ("BACKOFF_SECONDS", "BACKOFF_MAX_SECONDS", "RETENTION_DAYS", "WAKE_INTERVAL_SECONDS")
FLAGS = ("WAKE_ON_COMMIT", "ASYNC_COMMIT")


def check_outbox_settings(app_configs=None, **kwargs) -> list:
    value = outbox_settings.user_settings()
    if not isinstance(value, dict):
        return [Error("settings.OUTBOX must be a dict.", id="outbox.E001")]
    errors: list = []
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"Unknown OUTBOX setting(s): {', '.join(unknown)}.",
                hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
                id="outbox.E001",
            )
        )
    errors += check_rules(value.get("RULES", {}))
    errors += check_numbers({**DEFAULTS, **value})
    errors += check_health({**DEFAULTS, **value})
    errors += check_concurrency(value.get("CONCURRENCY", DEFAULTS["CONCURRENCY"]))
    wake_on_commit = value.get("WAKE_ON_COMMIT", DEFAULTS["WAKE_ON_COMMIT"])
    if wake_on_commit is not False and not apps.is_installed("django_q"):
        errors.append(
            Warning(
                "OUTBOX['WAKE_ON_COMMIT'] is on but django_q is not in INSTALLED_APPS: there "
                "is no relay to wake; events are only sent by `manage.py drain_outbox`.",
                hint="Add 'django_q' to INSTALLED_APPS, or set OUTBOX['WAKE_ON_COMMIT'] = False "
                "and run `drain_outbox --loop`.",
                id="outbox.W001",
            )
        )
    else:
        # Q_CLUSTER is django-q2's setting, read as its get_broker() reads it.
        errors += check_broker(getattr(settings, "Q_CLUSTER", {}))
    return errors


Q_CLUSTER_HINT = (
    "The simplest broker is your database: Q_CLUSTER = {'name': 'outbox', 'orm': 'default'}."
)


def check_broker(q_cluster: Any) -> list:
    """The broker django-q2 will pick from Q_CLUSTER (as django_q.brokers.get_broker does), and
    whether what it needs imports. Read from the setting, not django_q.conf.Conf, which is frozen
    at import time."""
    if not isinstance(q_cluster, dict):
        return [Error("settings.Q_CLUSTER must be a dict.", hint=Q_CLUSTER_HINT, id="outbox.E011")]
    if q_cluster.get("broker_class"):
        path = q_cluster["broker_class"]
        module, _, name = str(path).rpartition(".")
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as exc:
            return [
                Error(
                    f"Q_CLUSTER['broker_class'] = {path!r} does not import: {exc}.",
                    id="outbox.E011",
                )
            ]
        return []
    if q_cluster.get("iron_mq"):
        broker, needs = "IronMQ (Q_CLUSTER['iron_mq'])", "iron_mq"
    elif isinstance(q_cluster.get("sqs"), dict):
        broker, needs = "SQS (Q_CLUSTER['sqs'])", "boto3"
    elif q_cluster.get("orm"):
        alias = q_cluster["orm"]
        if alias not in settings.DATABASES:
            return [
                Error(
                    f"Q_CLUSTER['orm'] = {alias!r} is not a database in DATABASES.",
                    hint=f"Databases: {', '.join(settings.DATABASES)}.",
                    id="outbox.E011",
                )
            ]
        return []
    elif q_cluster.get("mongo"):
        broker, needs = "MongoDB (Q_CLUSTER['mongo'])", "pymongo"
    elif q_cluster.get("django_redis"):
        broker, needs = "Redis through django-redis (Q_CLUSTER['django_redis'])", "django_redis"
    else:
        broker, needs = "Redis (Q_CLUSTER names no other broker)", "redis"
    try:
        importlib.import_module(needs)
    except ImportError:
        return [
            Error(
                f"django-q2's broker is {broker}, and the {needs!r} package it needs is not "
                "installed: no drain task can be queued, on commit or by the schedule.",
                hint=f"{Q_CLUSTER_HINT} Or install {needs!r}.",
                id="outbox.E011",
            )
        ]
    return []


def check_rules(rules: Any) -> list:
    if not isinstance(rules, dict):
        return [Error("OUTBOX['RULES'] must be a dict of event type -> rule(s).", id="outbox.E002")]
    errors = []
    for event_type, entry in rules.items():
        if not isinstance(event_type, str) or not event_type:
            errors.append(
                Error(f"OUTBOX['RULES'] key {event_type!r} is not an event type.", id="outbox.E002")
            )
            continue
        if event_type == DEFERRED_SEND:
            errors.append(
                Error(
                    f"OUTBOX['RULES'] cannot use {event_type!r}: the outbox reserves it for "
                    "send() calls deferred to a commit (its rules would never run).",
                    hint="Rename the event type.",
                    id="outbox.E002",
                )
            )
            continue
        items = [entry] if isinstance(entry, dict) else entry
        if not isinstance(items, list) or not items:
            errors.append(
                Error(
                    f"OUTBOX['RULES'][{event_type!r}] must be a rule dict or a "
                    "non-empty list of them.",
                    id="outbox.E002",
                )
            )
            continue
        seen: set[str] = set()
        for index, rule in enumerate(items):
            where = f"OUTBOX['RULES'][{event_type!r}]" + (f"[{index}]" if entry is items else "")
            rule_errors = check_rule(where, rule)
            errors += rule_errors
            if not rule_errors:
                key = Rule(**rule).key
                if key in seen:
                    errors.append(
                        Error(
                            f"{where} repeats an earlier rule of the same event type.",
                            id="outbox.E007",
                        )
                    )
                seen.add(key)
    return errors


def check_rule(where: str, rule: Any) -> list:
    if not isinstance(rule, dict):
        return [Error(f"{where} must be a dict.", id="outbox.E003")]
    errors = []
    unknown = sorted(set(rule) - RULE_KEYS)
    if unknown:
        errors.append(
            Error(
                f"{where} has unknown key(s): {', '.join(map(str, unknown))}.",
                hint=f"Rule keys: {', '.join(sorted(RULE_KEYS))}.",
                id="outbox.E003",
            )
        )
    template_key = rule.get("template_key")
    if not isinstance(template_key, str) or not template_key.strip():
        errors.append(Error(f"{where} needs a non-empty 'template_key'.", id="outbox.E004"))
    channel = rule.get("channel")
    if channel is not None and channel not in Channel.values:
        errors.append(
            Error(
                f"{where} has unknown channel {channel!r}.",
                hint=f"Channels: {', '.join(Channel.values)}.",
                id="outbox.E005",
            )
        )
    message_type = rule.get("message_type")
    if message_type is not None and message_type not in MessageType.values:
        errors.append(
            Error(
                f"{where} has unknown message type {message_type!r}.",
                hint=f"Message types: {', '.join(MessageType.values)}.",
                id="outbox.E006",
            )
        )
    language = rule.get("language")
    if language is not None and supported(language) is None:
        errors.append(
            Error(
                f"{where} has language {language!r}, which is not in settings.LANGUAGES.",
                hint="Use a code of settings.LANGUAGES, or leave 'language' out.",
                id="outbox.E012",
            )
        )
    return errors


def check_numbers(values: dict) -> list:
    errors = [
        Error(
            f"OUTBOX['{name}'] must be True or False, got {values.get(name)!r}.", id="outbox.E008"
        )
        for name in FLAGS
        if not isinstance(values.get(name), bool)
    ]
    for name in POSITIVE + NON_NEGATIVE:
        value = values.get(name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and (value <= 0 if name in POSITIVE else value < 0):
            ok = False
        if not ok:
            bound = "> 0" if name in POSITIVE else ">= 0"
            errors.append(
                Error(
                    f"OUTBOX['{name}'] must be a number {bound}, got {value!r}.", id="outbox.E008"
                )
            )
    return errors


def check_concurrency(value: Any) -> list:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_CONCURRENCY:
        return []
    return [
        Error(
            f"OUTBOX['CONCURRENCY'] must be a whole number from 1 to {MAX_CONCURRENCY}, "
            f"got {value!r}.",
            hint="The provider calls one relay keeps in flight; 1 sends one at a time.",
            id="outbox.E013",
        )
    ]


#: The shortest HEALTH_TOKEN accepted: ``secrets.token_urlsafe(32)`` gives 43 characters.
MIN_TOKEN_LENGTH = 32


def check_health(values: dict) -> list:
    errors = []
    token = values.get("HEALTH_TOKEN")
    if token is not None and (
        not isinstance(token, str)
        or len(token) < MIN_TOKEN_LENGTH
        or token != "".join(token.split())
    ):
        errors.append(
            Error(
                f"OUTBOX['HEALTH_TOKEN'] must be None or a string of at least {MIN_TOKEN_LENGTH} "
                "characters without spaces.",
                hint='Generate one: python -c "import secrets; print(secrets.token_urlsafe(32))"',
                id="outbox.E009",
            )
        )
    status = values.get("HEALTH_LAGGING_STATUS")
    if isinstance(status, bool) or status not in (200, 503):
        errors.append(
            Error(
                f"OUTBOX['HEALTH_LAGGING_STATUS'] must be 503 or 200, got {status!r}.",
                hint="503 for a probe that reads the status code; 200 for one that reads "
                "'healthy' in the body and must not take the web server out of service.",
                id="outbox.E010",
            )
        )
    return errors
