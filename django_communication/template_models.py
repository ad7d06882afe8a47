"""Templates: the default text of each template and its translated variants."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .base_models import UUIDTimestampedModel
from .choices import MessageType


class TemplateContent(models.Model):
    """The channel fields of a template, the same in its default variant (MessageTemplate) and
    in each translated variant (MessageTemplateVariant)."""

    email_subject = models.CharField(max_length=255, blank=True)
    email_body_text = models.TextField(blank=True)
    email_body_html = models.TextField(blank=True)
    sms_body = models.TextField(blank=True)
    voice_body = models.TextField(
        blank=True, help_text=_("What the call says: plain text, read out by the provider.")
    )

    class Meta:
        abstract = True


class MessageTemplate(TemplateContent, UUIDTimestampedModel):
    """A template's key and type, and its default variant: the text sent when no variant in the
    message's language (see languages.py) exists."""

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    message_type = models.CharField(
        max_length=20, choices=MessageType.choices, default=MessageType.TRANSACTIONAL
    )
    voice_choices = models.JSONField(
        default=dict,
        blank=True,
        help_text=_(
            'Keypad choices the call offers, digit -> label, e.g. {"1": "confirm", '
            '"2": "cancel"}. Say them in the voice body.'
        ),
    )
    sample_context = models.JSONField(
        default=dict, blank=True, help_text=_("Example context used by the admin preview.")
    )
    is_active = models.BooleanField(default=True)
    strict = models.BooleanField(
        _("strict variables"),
        default=False,
        help_text=_(
            "Refuse to send when the context lacks a variable the template outputs, even "
            "while COMMUNICATION['STRICT_TEMPLATES'] is off."
        ),
    )

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class MessageTemplateVariant(TemplateContent):
    """A template's text in one language (a code from ``settings.LANGUAGES``)."""

    id = models.BigAutoField(primary_key=True)
    template = models.ForeignKey(MessageTemplate, on_delete=models.CASCADE, related_name="variants")
    # No choices: they would come from settings.LANGUAGES into the migrations. The admin form
    # offers settings.LANGUAGES.
    language = models.CharField(max_length=15, help_text=_("A code from settings.LANGUAGES."))

    class Meta:
        verbose_name = _("translated variant")
        ordering = ["template", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "language"], name="comm_template_variant_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template_id} [{self.language}]"
