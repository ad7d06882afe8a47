"""Mount with ``path("outbox/", include("outbox.urls"))``: ``GET outbox/health/`` is then
:func:`outbox.views.health`."""

from django.urls import path

from . import views

app_name = "outbox"

urlpatterns = [path("health/", views.health, name="health")]
