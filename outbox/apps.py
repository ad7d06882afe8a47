from django.apps import AppConfig
from django.core import checks


class OutboxConfig(AppConfig):
    name = "outbox"
    verbose_name = "Outbox"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_communication.attachments import register_keeper
        from django_communication.deferral import register_deferrer

        from .checks import check_outbox_settings
        from .database_checks import check_drain_schedule, check_rule_templates
        from .deferred import defer_to_outbox
        from .retention import unsent_attachment_paths

        checks.register(check_outbox_settings)
        checks.register(check_drain_schedule, checks.Tags.database)
        checks.register(check_rule_templates, checks.Tags.database)
        # Sends deferred to a commit ride on the outbox: durable across a crash after it.
        register_deferrer(defer_to_outbox)
        register_keeper(unsent_attachment_paths)
