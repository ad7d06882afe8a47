from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # SES/SNS delivery notifications, inbound messages and one-click unsubscribe.
    path("communication/", include("django_communication.urls")),
]
