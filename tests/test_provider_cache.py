"""Per-process caches stay bounded: settings reloads reuse providers, changes replace and close
them (issue 16: one SES/SNS provider leaked per reload)."""

from __future__ import annotations

import gc

import boto3
import pytest

from django_communication import cache, send
from django_communication.models import CommunicationSettings
from django_communication.providers import ses as ses_module
from django_communication.providers.registry import provider_for_channel
from django_communication.providers.ses import SesProvider
from django_communication.providers.sns import SnsProvider

RELOADS = 40


@pytest.fixture
def aws_config(comm_config, moto_server, settings):
    # CACHE_SECONDS = 0: every settings_row() loads a new row object, as each reload does.
    settings.COMMUNICATION = {"CACHE_SECONDS": 0}
    comm_config.email_provider = "ses"
    comm_config.sms_provider = "sns"
    comm_config.ses_region = "eu-west-1"
    comm_config.save()
    boto3.client("sesv2", region_name="eu-west-1").create_email_identity(
        EmailIdentity="shop@example.com"
    )
    return comm_config


def live(cls):
    gc.collect()
    return [obj for obj in gc.get_objects() if type(obj) is cls]


@pytest.mark.slow  # 80 sends through moto's server: several seconds
def test_reloads_keep_one_provider_per_channel(aws_config, customer):
    for i in range(RELOADS):
        assert send(to=customer, subject=f"{i}", body_text="hi", channel="email").status == "sent"
        assert send(to=customer, body_text=f"{i}", channel="sms").status == "sent"

    assert len(live(SesProvider)) == 1
    assert len(live(SnsProvider)) == 1
    assert len(cache.provider_cache) == 2


def test_unchanged_reload_does_not_rebuild(aws_config, monkeypatch):
    built = []
    real_build_client = ses_module.build_client
    monkeypatch.setattr(
        ses_module, "build_client", lambda *a, **kw: built.append(kw) or real_build_client(*a, **kw)
    )

    providers = {id(provider_for_channel("email")) for _ in range(RELOADS)}

    assert len(built) == 1
    assert len(providers) == 1


@pytest.mark.parametrize(
    ("field", "value", "seen"),
    [
        ("ses_region", "us-west-2", lambda p: p.client.meta.region_name == "us-west-2"),
        (
            "ses_access_key_id",
            "AKIANEWKEY0000000001",
            lambda p: p.client._request_signer._credentials.access_key == "AKIANEWKEY0000000001",
        ),
        ("ses_configuration_set", "tracking", lambda p: p.config.ses_configuration_set),
    ],
)
def test_a_change_made_elsewhere_replaces_and_closes_the_provider(
    aws_config, monkeypatch, field, value, seen
):
    aws_config.ses_secret_access_key = "secret"
    aws_config.save()
    closed = []
    real_close = SesProvider.close
    monkeypatch.setattr(SesProvider, "close", lambda self: closed.append(self) or real_close(self))
    old = provider_for_channel("email")

    # Another process saves the row: no signal reaches this one, the reload sees the new value.
    CommunicationSettings.objects.filter(pk=aws_config.pk).update(**{field: value})
    new = provider_for_channel("email")

    assert new is not old
    assert seen(new)
    assert closed == [old]
    assert provider_for_channel("email") is new
    del old, new, closed[:]
    assert len(live(SesProvider)) == 1


def test_closed_provider_still_sends(aws_config, customer):
    provider = provider_for_channel("email")
    provider.close()

    assert send(to=customer, subject="after close", body_text="hi").status == "sent"


def test_timed_cache_drops_expired_entries_and_stays_under_its_size(settings):
    settings.COMMUNICATION = {"CACHE_SECONDS": 0}
    expired = cache.TimedCache(maxsize=10)
    for key in range(100):
        expired.get(key, lambda: object())
    assert len(expired) <= 1

    settings.COMMUNICATION = {"CACHE_SECONDS": 3600}
    bounded = cache.TimedCache(maxsize=10)
    for key in range(100):
        bounded.get(key, lambda key=key: key)
    assert len(bounded) == 10
    # The most recently used stay: key 99 is served from the cache, key 0 is loaded again.
    assert bounded.get(99, lambda: "reloaded") == 99
    assert bounded.get(0, lambda: "reloaded") == "reloaded"


def test_every_module_cache_is_bounded():
    for timed in (cache.settings_cache, cache.template_cache, cache.suppression_cache):
        assert 0 < timed.maxsize <= 1000
