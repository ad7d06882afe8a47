"""Which certificate and subscription URLs count as SNS: genuine endpoints only (issue 10.1).

An S3 bucket named ``sns`` has hosts such as ``sns.s3.amazonaws.com``: whoever owns it could
sign notifications if the region label were taken on trust. Each look-alike is refused before
anything is fetched; each genuine endpoint is fetched and verifies.
"""

from __future__ import annotations

import pytest

from django_communication.models import Suppression
from django_communication.webhooks.sns import RejectedNotification, check_sns_url
from tests.snstools import CERT_URL, OTHER_TOPIC, TOPIC, sign

PEM = "/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"

GENUINE = [
    "https://sns.us-east-1.amazonaws.com" + PEM,
    "https://sns.eu-west-1.amazonaws.com" + PEM,
    "https://sns.ap-southeast-2.amazonaws.com" + PEM,
    "https://sns.il-central-1.amazonaws.com" + PEM,
    "https://sns.us-gov-west-1.amazonaws.com" + PEM,
    "https://sns.cn-north-1.amazonaws.com.cn" + PEM,
    "https://sns.cn-northwest-1.amazonaws.com.cn" + PEM,
    "https://sns.us-east-1.amazonaws.com:443" + PEM,  # the default port, spelled out
]

LOOK_ALIKES = {
    # S3 hosts of a bucket named "sns", in every addressing form.
    "s3-global": "https://sns.s3.amazonaws.com" + PEM,
    "s3-dash-region": "https://sns.s3-us-west-2.amazonaws.com" + PEM,
    "s3-dot-region": "https://sns.s3.us-west-2.amazonaws.com" + PEM,
    "s3-external": "https://sns.s3-external-1.amazonaws.com" + PEM,
    "s3-accelerate": "https://sns.s3-accelerate.amazonaws.com" + PEM,
    "s3-accelerate-dualstack": "https://sns.s3-accelerate.dualstack.amazonaws.com" + PEM,
    "s3-dualstack": "https://sns.s3.dualstack.us-west-2.amazonaws.com" + PEM,
    "s3-fips": "https://sns.s3-fips.us-east-1.amazonaws.com" + PEM,
    "s3-website-dash": "https://sns.s3-website-us-east-1.amazonaws.com" + PEM,
    "s3-website-dot": "https://sns.s3-website.us-east-1.amazonaws.com" + PEM,
    "s3-china": "https://sns.s3.cn-north-1.amazonaws.com.cn" + PEM,
    "s3-path-style": "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com" + PEM,
    # Extra, missing or wrong labels.
    "label-before": "https://a.sns.us-east-1.amazonaws.com" + PEM,
    "label-between": "https://sns.us-east-1.foo.amazonaws.com" + PEM,
    "sns-twice": "https://sns.sns.us-east-1.amazonaws.com" + PEM,
    "no-region": "https://sns.amazonaws.com" + PEM,
    "region-without-number": "https://sns.us-east.amazonaws.com" + PEM,
    "region-with-suffix": "https://sns.us-east-1a.amazonaws.com" + PEM,
    "ec2-shaped": "https://sns.compute-1.amazonaws.com" + PEM,
    "empty-label": "https://sns.us-east-1..amazonaws.com" + PEM,
    "prefix-sns": "https://evilsns.us-east-1.amazonaws.com" + PEM,
    "dash-not-dot": "https://sns-us-east-1.amazonaws.com" + PEM,
    "suffix-domain": "https://sns.us-east-1.amazonaws.com.evil.com" + PEM,
    "suffix-domain-cn": "https://sns.cn-north-1.amazonaws.com.cn.evil.com" + PEM,
    "other-tld": "https://sns.us-east-1.amazonaws.co" + PEM,
    "host-in-path": "https://evil.com/sns.us-east-1.amazonaws.com" + PEM,
    # User info, whichever side of the "@" the SNS host is on.
    "userinfo-sns-as-user": "https://sns.us-east-1.amazonaws.com@evil.com" + PEM,
    "userinfo-user": "https://user@sns.us-east-1.amazonaws.com" + PEM,
    "userinfo-user-password": "https://user:pw@sns.us-east-1.amazonaws.com" + PEM,
    "userinfo-empty": "https://:@sns.us-east-1.amazonaws.com" + PEM,
    "userinfo-backslash": "https://evil.com\\@sns.us-east-1.amazonaws.com" + PEM,
    "userinfo-encoded": "https://sns.us-east-1.amazonaws.com%40evil.com" + PEM,
    "fragment-before-at": "https://evil.com#@sns.us-east-1.amazonaws.com" + PEM,
    "fragment": "https://sns.us-east-1.amazonaws.com" + PEM + "#x",
    # Ports.
    "port-8443": "https://sns.us-east-1.amazonaws.com:8443" + PEM,
    "port-80": "https://sns.us-east-1.amazonaws.com:80" + PEM,
    "port-zero-padded": "https://sns.us-east-1.amazonaws.com:0443" + PEM,
    "port-empty": "https://sns.us-east-1.amazonaws.com:" + PEM,
    "port-twice": "https://sns.us-east-1.amazonaws.com:443:443" + PEM,
    # IP literals.
    "ipv4": "https://54.239.0.1" + PEM,
    "ipv4-loopback": "https://127.0.0.1" + PEM,
    "ipv4-decimal": "https://921370625" + PEM,
    "ipv4-hex": "https://0x36ef0001" + PEM,
    "ipv6": "https://[2600:1f18::1]" + PEM,
    "ipv6-loopback": "https://[::1]" + PEM,
    # Case: SNS writes lowercase; nothing else is taken for it.
    "upper-host": "https://SNS.US-EAST-1.AMAZONAWS.COM" + PEM,
    "mixed-sns": "https://Sns.us-east-1.amazonaws.com" + PEM,
    "mixed-region": "https://sns.US-east-1.amazonaws.com" + PEM,
    "mixed-domain": "https://sns.us-east-1.AmazonAWS.com" + PEM,
    "upper-scheme": "HTTPS://sns.us-east-1.amazonaws.com" + PEM,
    "mixed-scheme": "Https://sns.us-east-1.amazonaws.com" + PEM,
    # Trailing dots.
    "trailing-dot": "https://sns.us-east-1.amazonaws.com." + PEM,
    "trailing-dots": "https://sns.us-east-1.amazonaws.com.." + PEM,
    "trailing-dot-cn": "https://sns.cn-north-1.amazonaws.com.cn." + PEM,
    "trailing-dot-port": "https://sns.us-east-1.amazonaws.com.:443" + PEM,
    # Schemes.
    "http": "http://sns.us-east-1.amazonaws.com" + PEM,
    "scheme-relative": "//sns.us-east-1.amazonaws.com" + PEM,
    "no-scheme": "sns.us-east-1.amazonaws.com" + PEM,
    "ftp": "ftp://sns.us-east-1.amazonaws.com" + PEM,
    "file": "file:///etc/ssl/sns.pem",
    "one-slash": "https:/sns.us-east-1.amazonaws.com" + PEM,
    # Characters that parsers drop or map.
    "tab-in-host": "https://sns.us-east-1.amazon\taws.com" + PEM,
    "newline-in-host": "https://sns.us-east-1.amazonaws.com\n.evil.com" + PEM,
    "leading-space": " https://sns.us-east-1.amazonaws.com" + PEM,
    "percent-dot": "https://sns.us-east-1.amazonaws%2ecom" + PEM,
    "ideographic-dot": "https://sns.us-east-1.amazonaws\u3002com" + PEM,
    "cyrillic-a": "https://sns.us-east-1.\u0430mazonaws.com" + PEM,
    "empty": "",
}


@pytest.mark.parametrize("url", GENUINE)
def test_genuine_sns_endpoints_pass_the_check(url):
    assert check_sns_url(url) == url


@pytest.mark.parametrize("url", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alikes_fail_the_check(url):
    with pytest.raises(RejectedNotification) as raised:
        check_sns_url(url)
    assert raised.value.status == 403


@pytest.mark.parametrize("value", [None, 42, ["https://sns.us-east-1.amazonaws.com" + PEM]])
def test_a_url_that_is_not_a_string_fails_the_check(value):
    with pytest.raises(RejectedNotification):
        check_sns_url(value)


def complaint():
    return {
        "eventType": "Complaint",
        "mail": {"messageId": "ses-1"},
        "complaint": {"complainedRecipients": [{"emailAddress": "john@example.com"}]},
    }


@pytest.mark.parametrize("url", GENUINE)
def test_a_notification_signed_through_a_genuine_endpoint_is_applied(sns, sent, url):
    sns.certificates[url] = sns.certificates[CERT_URL]

    response = sns.post(sign({**sns.envelope(complaint()), "SigningCertURL": url}))

    assert response.status_code == 200, response.content
    assert sns.fetched == [url]
    assert Suppression.objects.filter(address="john@example.com").exists()


@pytest.mark.parametrize("url", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_certificate_on_a_look_alike_is_never_fetched(sns, sent, url):
    """The forger serves a certificate whose key signed the notification: it is not even
    fetched, and nothing changes."""
    sns.certificates[url] = sns.certificates[CERT_URL]

    response = sns.post(sign({**sns.envelope(complaint()), "SigningCertURL": url}))

    assert response.status_code == 403
    assert sns.fetched == []
    sent.refresh_from_db()
    assert sent.status == "sent"
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("url", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_a_subscribe_url_on_a_look_alike_is_never_visited(sns, url):
    subscription = sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "sub-1",
            "Token": "abc",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic " + TOPIC,
            "SubscribeURL": url,
            "Timestamp": "2024-05-01T12:00:00.000Z",
        }
    )

    response = sns.post(subscription)

    assert response.status_code == 403
    assert sns.fetched == [CERT_URL]  # the signature verified; the look-alike was not visited


def test_other_topics_are_still_refused_on_a_genuine_endpoint(sns, sent):
    url = GENUINE[0]
    sns.certificates[url] = sns.certificates[CERT_URL]
    data = sign({**sns.envelope(complaint(), topic=OTHER_TOPIC), "SigningCertURL": url})
    assert sns.post(data).status_code == 403
    assert sns.fetched == []
