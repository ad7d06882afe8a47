from __future__ import annotations

import pytest

from django_communication import cache
from django_communication.models import CommunicationSettings
from django_communication.providers import memory
from tests.outbox_providers import OUTBOX_PROVIDERS, ScriptedProvider

pytest_plugins = ["tests.servers", "tests.browser", "tests.snstools"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    cache.clear_all()
    memory.clear()
    yield
    cache.clear_all()
    memory.clear()


@pytest.fixture
def comm_config(db):
    """The settings singleton, sending everything to the in-memory provider."""
    config = CommunicationSettings.get_solo()
    config.email_provider = "memory"
    config.sms_provider = "memory"
    config.email_from_address = "shop@example.com"
    config.sms_origination_number = "+15005550006"
    config.save()
    return config


@pytest.fixture
def customer(db):
    from tests.testapp.models import Customer

    return Customer.objects.create(name="John", email="john@example.com", phone="+44 7911 123456")


@pytest.fixture
def booking(customer):
    from tests.testapp.models import Booking

    return Booking.objects.create(ref="BK1", customer=customer)


@pytest.fixture
def scripted(comm_config, settings):
    """Both channels through ScriptedProvider."""
    settings.COMMUNICATION = {"PROVIDERS": OUTBOX_PROVIDERS}
    comm_config.email_provider = comm_config.sms_provider = "scripted"
    comm_config.save()
    ScriptedProvider.reset()
    yield ScriptedProvider
    ScriptedProvider.reset()
