"""What the SES and SNS providers share: building a boto3 client and classifying its errors.

The endpoint is boto3's business: ``AWS_ENDPOINT_URL`` (every service) or
``AWS_ENDPOINT_URL_SESV2`` / ``AWS_ENDPOINT_URL_SNS`` (one service) point the clients at a local
stand-in such as moto or LocalStack.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from ..conf import MAX_CONCURRENCY
from ..exceptions import ProviderConfigurationError, ProviderError

#: Fail fast during an outage: short timeouts and one retry; the outbox retries later. The
#: client is shared by every delivery lane: its pool holds a connection for each of the most
#: lanes a batch may have, or botocore would queue their calls.
CLIENT_CONFIG = Config(
    connect_timeout=3,
    read_timeout=5,
    retries={"mode": "standard", "total_max_attempts": 2},
    max_pool_connections=MAX_CONCURRENCY,
)

#: Error codes that mean "not now" although AWS may answer them with a 4xx status.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "ThrottledException",
        "TooManyRequestsException",
        "LimitExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalError",
        "InternalErrorException",
        "InternalServerError",
    }
)


def build_client(
    service: str, *, region: str, access_key_id: str = "", secret_access_key: str = ""
) -> Any:
    """A boto3 client; explicit keys when both are given, else boto3's default chain."""
    kwargs: dict[str, Any] = {"region_name": region or None, "config": CLIENT_CONFIG}
    if access_key_id and secret_access_key:
        kwargs["aws_access_key_id"] = access_key_id
        kwargs["aws_secret_access_key"] = secret_access_key
    # A session of its own: boto3's default session is not safe to share between threads.
    return boto3.session.Session().client(service, **kwargs)


def provider_error(exc: ClientError | BotoCoreError, provider: str) -> ProviderError:
    """The ProviderError for a botocore exception: retryable for outages, throttling and 5xx."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        retryable = code in RETRYABLE_CODES or status >= 500 or status == 429
        description = f"{code} (HTTP {status}): {error.get('Message', '')}".rstrip(": ")
        return ProviderError(description, retryable=retryable, provider=provider)
    if isinstance(exc, ParamValidationError):
        return ProviderError(str(exc), retryable=False, provider=provider)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ProviderConfigurationError(
            f"AWS found no usable credentials ({type(exc).__name__}: {exc}). Give the process "
            "credentials (an IAM role, or the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "environment variables, or AWS_PROFILE), or fill in both "
            f"{provider}_access_key_id and {provider}_secret_access_key in the communication "
            "settings.",
            provider=provider,
        )
    if isinstance(exc, NoRegionError):
        return ProviderConfigurationError(
            f"AWS has no region for {provider}: set {provider}_region in the communication "
            "settings (or AWS_DEFAULT_REGION).",
            provider=provider,
        )
    # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError...:
    # an outage.
    return ProviderError(f"{type(exc).__name__}: {exc}", retryable=True, provider=provider)
