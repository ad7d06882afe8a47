"""Email through Amazon SES (the v2 API)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from .aws import build_client, provider_error
from .base import EmailProvider, identified_headers
from .mime import build_email

#: SES replaces a Message-ID header with its own, so the stable one travels in this header.
STABLE_ID_HEADER = "X-Message-Key"

if TYPE_CHECKING:
    from ..models import CommunicationSettings, Message


class SesProvider(EmailProvider):
    name = "ses"
    #: SES v2: 40 MB per message, encoding included.
    max_message_bytes = 40 * 1000 * 1000

    def __init__(self, config: CommunicationSettings) -> None:
        super().__init__(config)
        self.client = build_client(
            "sesv2",
            region=config.ses_region,
            access_key_id=config.ses_access_key_id,
            secret_access_key=config.ses_secret_access_key,
        )

    def close(self) -> None:
        self.client.close()

    def send(self, message: Message) -> str:
        content = self.raw(message) if message.attachments else self.simple(message)
        request: dict[str, Any] = {
            "FromEmailAddress": message.from_address,
            "Destination": {"ToAddresses": [message.to_address]},
            "Content": content,
        }
        if self.config.email_reply_to:
            request["ReplyToAddresses"] = [self.config.email_reply_to]
        if self.config.ses_configuration_set:
            request["ConfigurationSetName"] = self.config.ses_configuration_set
        try:
            response = self.client.send_email(**request)
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, self.name) from exc
        return response["MessageId"]

    def raw(self, message: Message) -> dict[str, Any]:
        """The whole MIME message (SES v2 ``Raw`` content): the only form that carries files."""
        email = build_email(message, self.config.email_reply_to, STABLE_ID_HEADER)
        return {"Raw": {"Data": email.message().as_bytes()}}

    def simple(self, message: Message) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if message.body_text:
            body["Text"] = {"Data": message.body_text, "Charset": "UTF-8"}
        if message.body_html:
            body["Html"] = {"Data": message.body_html, "Charset": "UTF-8"}
        simple: dict[str, Any] = {
            "Subject": {"Data": message.subject, "Charset": "UTF-8"},
            "Body": body,
        }
        headers = identified_headers(message, STABLE_ID_HEADER)
        simple["Headers"] = [{"Name": name, "Value": value} for name, value in headers.items()]
        return {"Simple": simple}
