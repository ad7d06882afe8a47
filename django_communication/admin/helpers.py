"""What both admins use (this one and the outbox's): the read-only audit-log permissions,
sandboxed HTML, links to an object's admin page, generic references shown as links."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape, format_html

PRE_STYLE = "white-space: pre-wrap; margin: 0; max-width: 60em;"
IFRAME_STYLE = (
    "width: 100%; max-width: 60em; height: 20em; border: 1px solid #ccc; background: #fff;"
)
ERROR_STYLE = "color: #ba2121; white-space: pre-wrap; margin: 0;"


class AuditLogAdmin:
    """Rows nobody adds or edits in the admin; deleting history is what retention is for. A
    subclass with ``allow_delete = True`` (re-registered) lets active superusers delete."""

    allow_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # View only: the change page renders read-only and a POST to it is refused.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return self.allow_delete and request.user.is_active and request.user.is_superuser


def sandboxed_html(html: str):
    """HTML shown in an iframe with every sandbox restriction: no scripts, forms or same origin.

    The source is escaped into the attribute (always: template output is a SafeString, which
    format_html alone would pass through); the browser unescapes it back into the iframe's own
    document, so the markup renders but can never touch the admin page.
    """
    return format_html(
        '<iframe sandbox="" referrerpolicy="no-referrer" style="{}" srcdoc="{}"'
        ' title="HTML preview"></iframe>',
        IFRAME_STYLE,
        escape(html),
    )


def admin_change_url(admin_site: admin.AdminSite, model, pk) -> str | None:
    """The change page of ``pk`` in ``admin_site``, or None when the model is not registered."""
    if model is None or not admin_site.is_registered(model):
        return None
    opts = model._meta
    try:
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[pk],
            current_app=admin_site.name,
        )
    except NoReverseMatch:
        return None


def object_link(admin_site: admin.AdminSite, content_type_id: int | None, object_id: str):
    """A generic reference as "type #id: object", linked to the object's admin page if any."""
    if not content_type_id:
        return "-"
    content_type = ContentType.objects.get_for_id(content_type_id)  # cached: no query
    model = content_type.model_class()
    if model is None:
        return f"{content_type.app_label}.{content_type.model} #{object_id} (model not installed)"
    name = model._meta.verbose_name
    try:
        obj = model._base_manager.get(pk=object_id)
    except (ObjectDoesNotExist, ValidationError, ValueError, TypeError):
        return f"{name} #{object_id} (deleted)"
    label = f"{name} #{object_id}: {obj}"
    url = admin_change_url(admin_site, model, obj.pk)
    return format_html('<a href="{}">{}</a>', url, label) if url else label
