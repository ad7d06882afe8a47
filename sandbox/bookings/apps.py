from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    verbose_name = "Bookings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_communication.signals import reply_received

        from .services import on_keypad_reply

        reply_received.connect(on_keypad_reply, dispatch_uid="bookings.on_keypad_reply")
