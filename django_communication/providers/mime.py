"""Attachments on an email built with django.core.mail (the ``django`` provider, and ``ses``
when it sends raw MIME): plain files, inline ``cid:`` images, calendar invites whose
``Content-Type`` carries the iCalendar ``METHOD`` (``text/calendar; method=REQUEST``), which
Outlook, Gmail and Apple Mail need to show the invite with its accept buttons."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import django
from django.core.mail import EmailMessage, EmailMultiAlternatives

from ..attachments import StoredAttachment, stored_list
from .base import identified_headers

if TYPE_CHECKING:
    from ..models import Message

CALENDAR_METHOD = re.compile(rb"^METHOD:([A-Za-z-]+)\s*$", re.MULTILINE)
MODERN_EMAIL = django.VERSION >= (6, 0)  # attach() takes email.message.MIMEPart objects


def build_email(
    message: Message,
    reply_to: str = "",
    id_header: str = "Message-ID",
    email_class: type[EmailMultiAlternatives] = EmailMultiAlternatives,
    **kwargs: Any,
) -> EmailMultiAlternatives:
    """The Django email of ``message``: its text and HTML bodies, its extra headers with its
    stable id under ``id_header``, ``reply_to``, and its stored files attached. ``kwargs`` go
    to ``email_class`` (``connection=``)."""
    headers = identified_headers(message, id_header)
    if reply_to:
        headers["Reply-To"] = reply_to
    email = email_class(
        subject=message.subject,
        body=message.body_text,
        from_email=message.from_address,
        to=[message.to_address],
        headers=headers,
        **kwargs,
    )
    if message.body_html:
        email.attach_alternative(message.body_html, "text/html")
    if message.attachments:
        attach_files(email, message)
    return email


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
