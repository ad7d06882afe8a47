"""``path("communication/", include("django_communication.urls"))``"""

from django.urls import path

from . import views

app_name = "django_communication"

urlpatterns = [
    path("sns/", views.sns_webhook, name="sns_webhook"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
