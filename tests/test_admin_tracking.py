"""Admin: a message's status history, the suppression list (staff remove entries), opt-outs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_communication.models import OptOut, Suppression

pytestmark = pytest.mark.django_db


def test_message_page_shows_its_status_history(bounced_message, admin_client):
    message = bounced_message("<script>x</script>")
    response = admin_client.get(
        reverse("admin:django_communication_message_change", args=[message.pk])
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Status history" in content or "status history" in content
    assert content.index("Delivery") < content.index("Permanent / General")
    assert "&quot;eventType&quot;: &quot;Bounce&quot;" in content  # the raw payload, escaped
    assert "<script>x</script>" not in content
    assert 'name="events-0-event_type"' not in content  # read-only


@pytest.fixture
def suppression(db):
    return Suppression.objects.create(channel="email", address="gone@example.com", reason="bounce")


def test_suppression_list_and_search(admin_client, suppression):
    url = reverse("admin:django_communication_suppression_changelist")
    response = admin_client.get(url, {"q": "gone"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [suppression]
    assert "Permanent bounce" in response.content.decode()


def test_staff_with_the_permission_remove_a_suppression(client, django_user_model, suppression):
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    for codename in ("view_suppression", "delete_suppression"):
        staff.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(staff)
    url = reverse("admin:django_communication_suppression_delete", args=[suppression.pk])

    response = client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Suppression.objects.exists()


def test_staff_without_the_permission_cannot_remove(client, django_user_model, suppression):
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_suppression"))
    client.force_login(staff)
    url = reverse("admin:django_communication_suppression_delete", args=[suppression.pk])
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Suppression.objects.exists()


def test_suppression_is_read_only_once_saved(admin_client, suppression):
    url = reverse("admin:django_communication_suppression_change", args=[suppression.pk])
    content = admin_client.get(url).content.decode()
    assert 'name="address"' not in content


def test_staff_add_a_suppression_by_hand(admin_client):
    url = reverse("admin:django_communication_suppression_add")
    response = admin_client.post(
        url, {"channel": "email", "address": "Someone@Example.com", "reason": "manual"}
    )
    assert response.status_code == 302
    assert Suppression.objects.get().address == "someone@example.com"


def test_opt_out_admin_lists_and_adds_only_optable_types(admin_client):
    OptOut.objects.create(channel="email", address="ann@example.com", message_type="announcement")
    url = reverse("admin:django_communication_optout_changelist")
    assert admin_client.get(url, {"q": "ann"}).context["cl"].result_count == 1

    add = reverse("admin:django_communication_optout_add")
    content = admin_client.get(add).content.decode()
    assert 'value="announcement"' in content and 'value="reminder"' in content
    assert 'value="transactional"' not in content
    response = admin_client.post(
        add, {"channel": "sms", "address": "+447911123456", "message_type": "transactional"}
    )
    assert response.status_code == 200  # the form refuses it
    assert OptOut.objects.count() == 1
