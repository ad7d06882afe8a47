"""A message's attachments in the admin: listed on its page (name, type, size, SHA-256), with
download links for staff who have ``django_communication.download_attachments``."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..attachments import storage, stored_list
from ..models import Message

PERMISSION = "django_communication.download_attachments"


class AttachmentsMixin:
    """For MessageAdmin: the ``attachment_list`` field (links only with the permission) and the
    download view."""

    admin_site: admin.AdminSite

    def get_fieldsets(self, request: HttpRequest, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.attachments:
            return fieldsets
        field = "attachment_links" if request.user.has_perm(PERMISSION) else "attachment_list"
        return (*fieldsets, (_("Attachments"), {"fields": (field,)}))

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return (*super().get_readonly_fields(request, obj), "attachment_list", "attachment_links")

    def get_urls(self):
        view = self.admin_site.admin_view(self.download_attachment)
        return [
            path(
                "<path:object_id>/attachments/<int:index>/",
                view,
                name="django_communication_message_attachment",
            ),
            *super().get_urls(),
        ]

    def download_attachment(self, request: HttpRequest, object_id: str, index: int):
        if not request.user.has_perm(PERMISSION):
            raise PermissionDenied
        message = get_object_or_404(Message, pk=object_id)
        listed = stored_list(message.attachments)
        if index >= len(listed) or message.attachments[index].get("pruned"):
            raise Http404("No such attachment (or it was pruned).")
        attachment = listed[index]
        try:
            handle = storage().open(attachment.path, "rb")
        except FileNotFoundError:
            raise Http404("The stored file is gone.") from None
        # Always a download, never rendered by the browser (an attached .html cannot run here).
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=attachment.name,
            content_type=attachment.mimetype,
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "sandbox"
        return response

    def rows(self, obj: Message, links: bool):
        rows = []
        for index, item in enumerate(obj.attachments):
            name = item.get("name", "?")
            if links and not item.get("pruned"):
                url = reverse(
                    "admin:django_communication_message_attachment",
                    args=[obj.pk, index],
                    current_app=self.admin_site.name,
                )
                name = format_html('<a href="{}">{}</a>', url, name)
            state = _(" (pruned)") if item.get("pruned") else ""
            rows.append(
                (
                    name,
                    item.get("mimetype", ""),
                    item.get("size", ""),
                    item.get("sha256", ""),
                    state,
                )
            )
        return format_html(
            '<table class="comm-attachments"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th>'
            "</tr>{}</table>",
            _("name"),
            _("type"),
            _("bytes"),
            "SHA-256",
            format_html_join(
                "",
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                ((n, s, t, b, c) for n, t, b, c, s in rows),
            ),
        )

    @admin.display(description=_("files"))
    def attachment_list(self, obj: Message):
        return self.rows(obj, links=False)

    @admin.display(description=_("files"))
    def attachment_links(self, obj: Message):
        return self.rows(obj, links=True)
