"""SMS through Amazon SNS (publish to a phone number)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from ..choices import MessageType
from .aws import build_client, provider_error
from .base import SmsProvider

if TYPE_CHECKING:
    from ..models import CommunicationSettings, Message


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


class SnsProvider(SmsProvider):
    name = "sns"

    def __init__(self, config: CommunicationSettings) -> None:
        super().__init__(config)
        self.client = build_client(
            "sns",
            region=config.sns_region or config.ses_region,
            access_key_id=config.sns_access_key_id,
            secret_access_key=config.sns_secret_access_key,
        )

    def close(self) -> None:
        self.client.close()

    def send(self, message: Message) -> str:
        promotional = message.message_type == MessageType.ANNOUNCEMENT
        attributes: dict[str, Any] = {
            "AWS.SNS.SMS.SMSType": _string("Promotional" if promotional else "Transactional")
        }
        if self.config.sms_sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = _string(self.config.sms_sender_id)
        if self.config.sms_origination_number:
            attributes["AWS.MM.SMS.OriginationNumber"] = _string(self.config.sms_origination_number)
        try:
            response = self.client.publish(
                PhoneNumber=message.to_address,
                Message=message.body_text,
                MessageAttributes=attributes,
            )
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, self.name) from exc
        return response["MessageId"]
