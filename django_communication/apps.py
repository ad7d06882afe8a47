from django.apps import AppConfig
from django.core import checks
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save


class CommunicationConfig(AppConfig):
    name = "django_communication"
    verbose_name = "Communication"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import cache, template_checks, twilio_checks
        from . import checks as our_checks
        from .models import (
            CommunicationSettings,
            MessageTemplate,
            MessageTemplateVariant,
            OptOut,
            Suppression,
        )

        checks.register(our_checks.check_settings)
        checks.register(our_checks.check_stored_secrets)
        checks.register(our_checks.check_urls, checks.Tags.urls)
        checks.register(twilio_checks.check_twilio)
        checks.register(template_checks.check_template_variants, checks.Tags.database)

        def forget_settings(**kwargs):
            cache.settings_cache.clear()

        def forget_template(instance, **kwargs):
            cache.template_cache.clear()

        def forget_blocks(**kwargs):
            cache.suppression_cache.clear()

        def forget_on_setting_changed(setting, **kwargs):
            if setting in ("COMMUNICATION", "EMAIL_BACKEND", "TEMPLATES"):
                cache.clear_all()

        setting_changed.connect(forget_on_setting_changed, weak=False)
        for signal in (post_save, post_delete):
            signal.connect(forget_settings, sender=CommunicationSettings, weak=False)
            signal.connect(forget_template, sender=MessageTemplate, weak=False)
            signal.connect(forget_template, sender=MessageTemplateVariant, weak=False)
            signal.connect(forget_blocks, sender=Suppression, weak=False)
            signal.connect(forget_blocks, sender=OptOut, weak=False)
