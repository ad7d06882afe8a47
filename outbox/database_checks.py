"""System checks that read the database: ``manage.py check --database default`` (and ``migrate``).

outbox.W002  the outbox relies on django-q2 (WAKE_ON_COMMIT) but no schedule drains it
outbox.W003  a rule's template key has no active template, or none with content for the channel
             the rule sends on

Warnings, not errors: ``migrate`` runs these checks, and an error would stop the migration that
creates the schedule's table or the templates. Before ``migrate`` (no tables yet) they say
nothing.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import Warning
from django.db import DatabaseError, router

from django_communication.choices import Channel
from django_communication.conf import comm_settings
from django_communication.models import MessageTemplate

from .checks import check_rule
from .conf import Rule, outbox_settings
from .wakeup import DRAIN_TASK


def check_drain_schedule(app_configs=None, databases=None, **kwargs) -> list:
    if not databases or not apps.is_installed("django_q") or not outbox_settings.wake_on_commit:
        return []
    from django_q.models import Schedule

    alias = router.db_for_read(Schedule)
    if alias not in databases:
        return []
    try:
        scheduled = Schedule.objects.using(alias).filter(func=DRAIN_TASK).exists()
    except DatabaseError:  # not migrated yet
        return []
    if scheduled:
        return []
    return [
        Warning(
            f"No django-q2 schedule runs {DRAIN_TASK}: an event whose wake-up was lost (broker "
            "down, process killed right after the commit) waits until something drains the "
            "outbox.",
            hint="Run `python manage.py outbox_schedule` (once per deploy), and a qcluster.",
            id="outbox.W002",
        )
    ]


#: The fields a template needs to send on a channel (email: a subject and one of the bodies).
CHANNEL_FIELDS = {
    Channel.EMAIL: (("email_subject",), ("email_body_text", "email_body_html")),
    Channel.SMS: (("sms_body",),),
    Channel.VOICE: (("voice_body",),),
}


def check_rule_templates(app_configs=None, databases=None, **kwargs) -> list:
    if not databases:
        return []
    alias = router.db_for_read(MessageTemplate)
    rules = outbox_settings.get("RULES")
    if alias not in databases or not isinstance(rules, dict):
        return []
    wanted = list(each_rule(rules))
    if not wanted:
        return []
    keys = {rule.template_key for _, rule in wanted}
    try:
        templates = {
            row.key: row
            for row in MessageTemplate.objects.using(alias).filter(key__in=keys, is_active=True)
        }
    except DatabaseError:  # not migrated yet
        return []
    warnings = []
    for where, rule in wanted:
        template = templates.get(rule.template_key)
        if template is None:
            warnings.append(
                Warning(
                    f"{where} names template {rule.template_key!r}, and no active template has "
                    f"that key: its events go dead (channel {rule_channel(rule, None)}).",
                    hint="Create the template (or activate it) in the admin, or fix the key.",
                    id="outbox.W003",
                )
            )
            continue
        channel = rule_channel(rule, template)
        if not has_content(template, channel):
            warnings.append(
                Warning(
                    f"{where} sends on {channel} with template {rule.template_key!r}, which has "
                    f"no {channel} content: its events go dead.",
                    hint=f"Fill in the template's {channel} fields, or give the rule another "
                    "'channel'.",
                    id="outbox.W003",
                )
            )
    return warnings


def each_rule(rules: dict[str, Any]):
    """(where, Rule) for each well-formed rule; check_outbox_settings reports the others."""
    for event_type, entry in rules.items():
        items = [entry] if isinstance(entry, dict) else entry
        if not isinstance(items, list):
            continue
        for index, raw in enumerate(items):
            where = f"OUTBOX['RULES'][{event_type!r}]" + (f"[{index}]" if entry is items else "")
            if not check_rule(where, raw):
                yield where, Rule(**raw)


def rule_channel(rule: Rule, template: MessageTemplate | None) -> str:
    """The channel the relay sends the rule on when emit() names none: the rule's channel, else
    the routing of its message type, else of the template's type."""
    if rule.channel:
        return rule.channel
    message_type = rule.message_type or (template.message_type if template else None)
    routed = comm_settings.routing.get(message_type or "")
    return routed or "the routed channel"


def has_content(template: MessageTemplate, channel: str) -> bool:
    groups = CHANNEL_FIELDS.get(channel, ())
    return all(any(getattr(template, name).strip() for name in group) for group in groups)
