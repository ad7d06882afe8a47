"""The library's admin, one module per model family; importing the package registers them.

* templates.py: MessageTemplate, with a rendered preview
* messages.py: the Message audit log and its status history
* suppression.py: Suppression and OptOut
* communication_settings.py: the settings singleton
* helpers.py: display helpers the outbox's admin shares
"""

from . import communication_settings, messages, suppression, templates

__all__ = ["communication_settings", "messages", "suppression", "templates"]
