"""Admin of the settings singleton: each channel's provider chosen from those that can serve it
(the registry); the SMS origination number and the voice caller id checked as E.164; AWS secret
keys and the Twilio auth token are write-only (the form never renders them back; a blank field
keeps the stored value and a "clear" box removes it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from solo.admin import SingletonModelAdmin

from ..models import CommunicationSettings
from ..providers.registry import PROVIDER_FIELDS, provider_choice_errors, providers_for_channel
from ..recipients import e164

SECRET_FIELDS = ("ses_secret_access_key", "sns_secret_access_key", "twilio_auth_token")


NOT_SET_HELP = {
    "ses_secret_access_key": _("Not set. Blank: boto3 finds credentials itself (recommended)."),
    "sns_secret_access_key": _("Not set. Blank: boto3 finds credentials itself (recommended)."),
    "twilio_auth_token": _(
        "Not set. Blank: COMMUNICATION['TWILIO']['AUTH_TOKEN'] or the TWILIO_AUTH_TOKEN "
        "environment variable (recommended)."
    ),
}
CHANNEL_NAMES = {"email": _("email"), "sms": _("SMS"), "voice": _("voice calls")}


class CommunicationSettingsForm(forms.ModelForm):
    """Secret keys are write-only: blank keeps the stored value, the clear box removes it."""

    clear_ses_secret_access_key = forms.BooleanField(
        required=False, label=_("Clear the stored SES secret access key")
    )
    clear_sns_secret_access_key = forms.BooleanField(
        required=False, label=_("Clear the stored SNS secret access key")
    )
    clear_twilio_auth_token = forms.BooleanField(
        required=False, label=_("Clear the stored Twilio auth token")
    )

    class Meta:
        model = CommunicationSettings
        fields = (
            "default_channel",
            "email_provider",
            "email_from_address",
            "email_from_name",
            "email_reply_to",
            "sms_provider",
            "sms_sender_id",
            "sms_origination_number",
            "voice_provider",
            "voice_caller_id",
            "ses_region",
            "ses_configuration_set",
            "ses_access_key_id",
            "ses_secret_access_key",
            "sns_region",
            "sns_access_key_id",
            "sns_secret_access_key",
            "twilio_account_sid",
            "twilio_auth_token",
        )
        widgets = {
            name: forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            for name in SECRET_FIELDS
        }
        labels = {
            "email_provider": _("Email provider"),
            "email_from_address": _("From address"),
            "email_from_name": _("From name"),
            "email_reply_to": _("Reply-To address"),
            "sms_provider": _("SMS provider"),
            "sms_sender_id": _("SMS sender ID"),
            "sms_origination_number": _("SMS origination number"),
            "ses_region": _("SES region"),
            "ses_configuration_set": _("SES configuration set"),
            "ses_access_key_id": _("SES access key ID"),
            "ses_secret_access_key": _("SES secret access key"),
            "sns_region": _("SNS region"),
            "sns_access_key_id": _("SNS access key ID"),
            "sns_secret_access_key": _("SNS secret access key"),
            "voice_provider": _("Voice provider"),
            "voice_caller_id": _("Voice caller ID"),
            "twilio_account_sid": _("Twilio account SID"),
            "twilio_auth_token": _("Twilio auth token"),
        }
        help_texts = {
            "sms_origination_number": _(
                "The number SMS are sent from, in E.164 form: + and the country code, e.g. "
                "+14155552671."
            ),
            "voice_caller_id": _(
                "The number calls are made from, in E.164 form; blank: the SMS origination number."
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            if name not in self.fields:
                continue
            stored = bool(getattr(self.instance, name, ""))
            # The stored secret is no initial value: it is never sent to the browser, and a blank
            # submission then counts as "unchanged" in the admin history.
            self.initial[name] = ""
            self.fields[name].help_text = (
                _("A value is stored. Leave blank to keep it; type a new one to replace it.")
                if stored
                else NOT_SET_HELP[name]
            )
        for channel, name in PROVIDER_FIELDS.items():
            if name not in self.fields:
                continue
            names = providers_for_channel(channel)
            current = getattr(self.instance, name, "")
            if current and current not in names:  # kept visible, so that saving reports it
                names.append(current)
            self.fields[name] = forms.ChoiceField(
                choices=[(provider, provider) for provider in names],
                label=self.fields[name].label,
                help_text=_(
                    "The providers that can send %(channel)s. Add your own in "
                    "settings.COMMUNICATION['PROVIDERS']."
                )
                % {"channel": CHANNEL_NAMES[channel]},
            )

    def clean_sms_origination_number(self) -> str:
        return self.clean_number("sms_origination_number")

    def clean_voice_caller_id(self) -> str:
        return self.clean_number("voice_caller_id")

    def clean_number(self, name: str) -> str:
        number = (self.cleaned_data.get(name) or "").strip()
        if not number:
            return ""
        try:
            normalised = e164(number)
        except ValueError as exc:
            raise ValidationError(
                _("Enter the number in E.164 form, such as +14155552671: %(reason)s.")
                % {"reason": exc}
            ) from None
        return normalised

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        chosen = CommunicationSettings(
            **{
                name: cleaned.get(name, getattr(self.instance, name))
                for name in PROVIDER_FIELDS.values()
            }
        )
        for name, error in provider_choice_errors(chosen).items():
            if name in self.fields:
                self.add_error(name, error)
        for name in SECRET_FIELDS:
            if name not in self.fields:
                continue
            new_value = cleaned.get(name) or ""
            if cleaned.get(f"clear_{name}"):
                if new_value:
                    self.add_error(
                        name, _("Type a new secret or tick the clear box below, not both.")
                    )
                cleaned[name] = ""
            elif not new_value:
                cleaned[name] = getattr(self.instance, name, "")
        return cleaned


@admin.register(CommunicationSettings)
class CommunicationSettingsAdmin(SingletonModelAdmin):
    form = CommunicationSettingsForm
    fieldsets = (
        (None, {"fields": ("default_channel",)}),
        (
            _("Email"),
            {
                "fields": (
                    "email_provider",
                    "email_from_address",
                    "email_from_name",
                    "email_reply_to",
                )
            },
        ),
        (_("SMS"), {"fields": ("sms_provider", "sms_sender_id", "sms_origination_number")}),
        (_("Voice calls"), {"fields": ("voice_provider", "voice_caller_id")}),
        (
            _("Amazon SES"),
            {
                "fields": (
                    "ses_region",
                    "ses_configuration_set",
                    "ses_access_key_id",
                    "ses_secret_access_key",
                    "clear_ses_secret_access_key",
                ),
                "description": _(
                    "Leave the keys blank to use boto3's default credentials (environment, IAM "
                    "role): secrets stored here are readable by anyone with a database backup."
                ),
            },
        ),
        (
            _("Amazon SNS"),
            {
                "fields": (
                    "sns_region",
                    "sns_access_key_id",
                    "sns_secret_access_key",
                    "clear_sns_secret_access_key",
                )
            },
        ),
        (
            _("Twilio"),
            {
                "fields": (
                    "twilio_account_sid",
                    "twilio_auth_token",
                    "clear_twilio_auth_token",
                ),
                "description": _(
                    "Blank: COMMUNICATION['TWILIO'] or the TWILIO_ACCOUNT_SID / "
                    "TWILIO_AUTH_TOKEN environment variables, which keep the token out of "
                    "database backups."
                ),
            },
        ),
    )
