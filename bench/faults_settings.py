"""Settings of bench/faults.py's relays: bench.settings, sending through an SMTP server on
loopback (BENCH_SMTP_PORT), two emails per event, and the outbox settings under test
(BENCH_FAULTS_OUTBOX, JSON). The harness configures itself with the same ``build()``."""

from __future__ import annotations

import json
import os
from typing import Any

from bench import settings as bench_settings

EVENT_TYPE = "fault.pair"
RULES = {
    EVENT_TYPE: [
        {"template_key": "pair_a", "channel": "email"},
        {"template_key": "pair_b", "channel": "email"},
    ],
    # The poison: a missing template, a template that does not render; no rule is the third.
    "fault.missing_template": {"template_key": "no_such_template", "channel": "email"},
    "fault.render_error": {"template_key": "broken", "channel": "email"},
}


def build(env: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(os.environ if env is None else env)
    values = bench_settings.build(env)
    values["EMAIL_BACKEND"] = "django.core.mail.backends.smtp.EmailBackend"
    values["EMAIL_HOST"] = "127.0.0.1"
    values["EMAIL_PORT"] = int(env.get("BENCH_SMTP_PORT", "2525"))
    values["EMAIL_TIMEOUT"] = 10
    values["OUTBOX"] = {
        "RULES": RULES,
        "WAKE_ON_COMMIT": False,
        **json.loads(env.get("BENCH_FAULTS_OUTBOX", "{}")),
    }
    values["INSTALLED_APPS"] = [app for app in values["INSTALLED_APPS"] if app != "post_office"]
    return values


globals().update(build())
