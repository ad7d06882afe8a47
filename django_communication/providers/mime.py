"""Attachments on an email built with django.core.mail (the ``django`` provider, and ``ses``
when it sends raw MIME): plain files, inline ``cid:`` images, calendar invites whose
``Content-Type`` carries the iCalendar ``METHOD`` (``text/calendar; method=REQUEST``), which
Outlook, Gmail and Apple Mail need to show the invite with its accept buttons."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import django
from django.core.mail import EmailMessage

from ..attachments import StoredAttachment, stored_list

if TYPE_CHECKING:
    from ..models import Message

CALENDAR_METHOD = re.compile(rb"^METHOD:([A-Za-z-]+)\s*$", re.MULTILINE)
MODERN_EMAIL = django.VERSION >= (6, 0)  # attach() takes email.message.MIMEPart objects


def attach_files(email: EmailMessage, message: Message) -> None:
    for attachment in stored_list(message.attachments):
        content = attachment.read()
        if attachment.mimetype == "text/calendar" or attachment.content_id:
            email.attach(special_part(attachment, content))
        else:
            email.attach(attachment.name, content, attachment.mimetype)


def special_part(attachment: StoredAttachment, content: bytes):
    """An inline image (Content-ID, inline disposition) or an invite (method parameter)."""
    maintype, subtype = attachment.mimetype.split("/", 1)
    disposition = "inline" if attachment.content_id else "attachment"
    method = CALENDAR_METHOD.search(content) if attachment.mimetype == "text/calendar" else None
    if MODERN_EMAIL:
        from email.message import MIMEPart

        part = MIMEPart()
        params = {"method": method.group(1).decode().upper()} if method else {}
        if maintype == "text":
            part.set_content(
                content.decode(),
                subtype=subtype,
                disposition=disposition,
                filename=attachment.name,
                params=params,
            )
        else:
            part.set_content(
                content, maintype, subtype, disposition=disposition, filename=attachment.name
            )
        if attachment.content_id:
            part["Content-ID"] = f"<{attachment.content_id}>"
        return part
    from email import encoders
    from email.mime.base import MIMEBase
    from email.mime.text import MIMEText

    if maintype == "text":
        part = MIMEText(content.decode(), subtype, "utf-8")
    else:
        part = MIMEBase(maintype, subtype)
        part.set_payload(content)
        encoders.encode_base64(part)
    if method:
        part.set_param("method", method.group(1).decode().upper())
    part.add_header("Content-Disposition", disposition, filename=attachment.name)
    if attachment.content_id:
        part.add_header("Content-ID", f"<{attachment.content_id}>")
    return part
