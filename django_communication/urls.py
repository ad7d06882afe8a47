"""``path("communication/", include("django_communication.urls"))``"""

from django.urls import path

from . import twilio_views, views

app_name = "django_communication"

urlpatterns = [
    path("sns/", views.sns_webhook, name="sns_webhook"),
    path("twilio/status/", twilio_views.status, name="twilio_status"),
    path("twilio/sms/", twilio_views.inbound_sms, name="twilio_sms"),
    path("twilio/keypad/<uuid:message_id>/", twilio_views.keypad, name="twilio_keypad"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
