"""Real servers on loopback for provider tests: moto (SES, SNS...) and an SMTP server.

Fixtures:

``moto_server``
    A running :class:`MotoServer` with a fresh moto state and no recorded requests. The
    environment points boto3 at it (``AWS_ENDPOINT_URL``) with fake credentials
    (``AWS_ACCESS_KEY_ID=testing``) and ``AWS_DEFAULT_REGION=us-east-1``; no AWS config file, no
    instance metadata. ``moto_server.stop()`` simulates an outage (connections are refused),
    ``moto_server.start()`` brings it back on the same port with moto's state intact.
    ``moto_server.fail_with(503, "ServiceUnavailable")`` makes it answer every AWS call with that
    error until ``clear_fault()``. ``moto_server.requests`` lists what arrived on the wire;
    ``moto_server.most_in_flight`` is the most AWS calls it was serving at once, and
    ``moto_server.hold_until_in_flight(n)`` makes the calls wait (up to 3 s, under botocore's
    read timeout) until n are in flight together, once: calls made one at a time stay at 1.

``smtp_server``
    A running :class:`SmtpServer` (aiosmtpd) with no received mail: ``.messages`` holds what it
    accepted, ``.refuse_recipients(code)`` / ``.refuse_data(code)`` make it answer RCPT / DATA with
    that code, ``.data_delay`` (seconds) delays each DATA answer like a round trip (other
    sessions go on meanwhile; ``.data_in_progress`` counts the DATA not answered yet),
    ``.stop()`` / ``.start()`` as above. ``smtp_settings`` also points Django's SMTP
    EmailBackend at it.

Both servers are started once per test session and reset for every test.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import json
import socket
import threading
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

LOOPBACK = "127.0.0.1"
FAKE_KEY_ID = "testing"
FAKE_SECRET = "testing"


def sent_by_moto(region: str) -> list:
    """The emails moto's SES (in this process, behind its server on loopback) accepted."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return ses_backends[DEFAULT_ACCOUNT_ID][region].sent_messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------- moto


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}

    @property
    def access_key_id(self) -> str:
        """The key id in the SigV4 Authorization header: which credentials signed the call."""
        auth = self.headers.get("authorization", "")
        return auth.partition("Credential=")[2].partition("/")[0]

    @property
    def credential_scope(self) -> list[str]:
        """[key id, date, region, service, "aws4_request"]."""
        auth = self.headers.get("authorization", "")
        return auth.partition("Credential=")[2].partition(",")[0].split("/")


class _QuietHandler(MotoRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class MotoServer:
    """moto's server app in a thread, plus a record of the requests and fault injection."""

    def __init__(self, host: str = LOOPBACK, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.fault: tuple[int, str, str] | None = None
        self._serving = threading.Condition()
        self.in_flight = self.most_in_flight = 0
        self.hold_for = 0
        self._app = DomainDispatcherApplication(create_backend_app)
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        if self._server is not None:
            return
        self._server = make_server(
            self.host, self.port, self._wsgi, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_address[1]  # port 0 → the port picked, kept on restart
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut down and close the listening socket: new connections are refused."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def reset(self) -> None:
        """Forget every moto resource (all services) and every recorded request and fault."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        self.requests.clear()
        self.fault = None
        with self._serving:
            self.most_in_flight = self.in_flight
            self.hold_for = 0

    def hold_until_in_flight(self, count: int) -> None:
        """Hold the next AWS calls (up to 3 s each) until ``count`` are in flight at once."""
        with self._serving:
            self.hold_for = count

    def fail_with(self, status: int, code: str, message: str = "injected by the test") -> None:
        """Answer every AWS call with this error (in the service's protocol) until cleared."""
        self.fault = (status, code, message)

    def clear_fault(self) -> None:
        self.fault = None

    # What arrived, by operation.

    def ses_send_email_calls(self) -> list[dict[str, Any]]:
        """Bodies of SES v2 SendEmail calls, as sent."""
        return [
            r.json()
            for r in self.requests
            if r.method == "POST" and r.path == "/v2/email/outbound-emails"
        ]

    def sns_publish_calls(self) -> list[dict[str, Any]]:
        """SNS Publish calls: the form fields plus ``attributes`` as {name: string value}."""
        calls = []
        for r in self.requests:
            if r.method != "POST" or "x-amz-target" in r.headers:
                continue
            form = r.form()
            if form.get("Action") != "Publish":
                continue
            attributes = {}
            n = 1
            while f"MessageAttributes.entry.{n}.Name" in form:
                name = form[f"MessageAttributes.entry.{n}.Name"]
                attributes[name] = form[f"MessageAttributes.entry.{n}.Value.StringValue"]
                n += 1
            calls.append({**form, "attributes": attributes})
        return calls

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):
            return self._app(environ, start_response)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        self.requests.append(RecordedRequest(environ["REQUEST_METHOD"], path, headers, body))
        if self.fault is not None:
            return self._fault_response(path, headers, start_response)
        with self._serving:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._serving.notify_all()
            if self.hold_for:
                self._serving.wait_for(lambda: self.in_flight >= self.hold_for, timeout=3)
                self.hold_for = 0  # met (or not): the rest of the calls go at once
        try:
            return self._app(environ, start_response)
        finally:
            with self._serving:
                self.in_flight -= 1

    def _fault_response(self, path: str, headers: dict[str, str], start_response: Any) -> Any:
        status, code, message = self.fault
        reason = {400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}
        status_line = f"{status} {reason.get(status, 'Error')}"
        if path.startswith("/v2/") or "json" in headers.get("content-type", ""):
            payload = json.dumps({"message": message}).encode()
            response_headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
        else:
            kind = "Receiver" if status >= 500 else "Sender"
            payload = (
                f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
                f"<Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            ).encode()
            response_headers = [("Content-Type", "text/xml")]
        response_headers.append(("Content-Length", str(len(payload))))
        start_response(status_line, response_headers)
        return [payload]


@pytest.fixture(scope="session")
def _moto_server_session():
    server = MotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto_server(_moto_server_session, monkeypatch, tmp_path):
    """A running, empty moto server on loopback, with boto3 pointed at it (see module doc)."""
    server = _moto_server_session
    server.start()  # a previous test may have stopped it
    server.reset()
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_ENDPOINT_URL_SESV2",
        "AWS_ENDPOINT_URL_SES",
        "AWS_ENDPOINT_URL_SNS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield server
    server.clear_fault()
    server.start()


# --------------------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    message: EmailMessage = field(repr=False)


class _RecordingHandler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.server.rcpt_reply:
            return self.server.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.server.data_in_progress += 1
        try:
            return await self.answer_data(envelope)
        finally:
            self.server.data_in_progress -= 1

    async def answer_data(self, envelope):
        if self.server.data_delay:
            await asyncio.sleep(self.server.data_delay)
        if self.server.data_reply:
            return self.server.data_reply
        content = envelope.original_content or envelope.content
        self.server.messages.append(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                message=email.message_from_bytes(content, policy=email.policy.default),
            )
        )
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd on loopback that keeps what it accepts and can refuse on demand."""

    REPLIES = {
        550: "550 5.1.1 Mailbox unavailable",
        451: "451 4.3.0 Temporary failure, try again later",
        554: "554 5.7.1 Message rejected",
        452: "452 4.2.2 Mailbox full",
    }

    def __init__(self, host: str = LOOPBACK, port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.messages: list[ReceivedMail] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.data_delay = 0.0
        #: DATA commands received and not answered yet.
        self.data_in_progress = 0
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(_RecordingHandler(self), hostname=self.host, port=self.port)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def reset(self) -> None:
        self.messages.clear()
        self.rcpt_reply = self.data_reply = None
        self.data_delay = 0.0

    def refuse_recipients(self, code: int) -> None:
        """Answer every RCPT TO with this code (550: permanent, 451: temporary)."""
        self.rcpt_reply = self.REPLIES[code]

    def refuse_data(self, code: int) -> None:
        """Accept the recipients, then answer DATA with this code."""
        self.data_reply = self.REPLIES[code]


@pytest.fixture(scope="session")
def _smtp_server_session():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(_smtp_server_session):
    """A running SMTP server on loopback with an empty mailbox (see module doc)."""
    server = _smtp_server_session
    server.start()
    server.reset()
    yield server
    server.reset()
    server.start()


@pytest.fixture
def smtp_settings(smtp_server, settings):
    """Django's SMTP EmailBackend, pointed at ``smtp_server``."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    return smtp_server
