"""The one error of the webhook: a request that is not a notification we trust."""

from __future__ import annotations


class RejectedNotification(Exception):
    """The request is not a notification we trust. ``status`` is the HTTP answer: 400
    (malformed), 403 (wrong topic, bad certificate URL, bad signature), 413 (too large), 503
    (the certificate could not be fetched right now: SNS retries). ``reason`` is for the log."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
