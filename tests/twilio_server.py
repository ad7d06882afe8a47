"""A Twilio REST API stand-in on loopback, for the official twilio client to talk HTTP to.

Fixtures:

``twilio_server``
    A running :class:`TwilioServer` with no recorded requests. It answers
    ``POST /2010-04-01/Accounts/<sid>/Messages.json`` and ``.../Calls.json`` as Twilio does
    (201, a JSON resource with a fresh ``SM…`` / ``CA…`` sid, status ``queued``), checks HTTP
    Basic credentials (401 with Twilio's error 20003 if wrong), and ``fail_with(status, code)``
    answers every call with a Twilio-shaped error until ``clear_fault()``. ``requests`` lists
    what arrived: method, path, headers and the form fields.

``twilio_settings``
    ``COMMUNICATION["TWILIO"]`` pointed at ``twilio_server`` (``API_URL``) with the test
    account, ``SITE_URL`` set, and the SMS and voice providers set to ``twilio``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest

LOOPBACK = "127.0.0.1"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SITE_URL = "https://shop.example.com"


@dataclass
class TwilioRequest:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, list[str]]

    def field(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        owner = self.server.owner
        request = TwilioRequest(
            "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, parse_qs(body)
        )
        owner.requests.append(request)
        pair = f"{owner.account_sid}:{owner.auth_token}".encode()
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(pair).decode():
            return self.answer(401, error(20003, "Authenticate", 401))
        if owner.fault is not None:
            status, code, text = owner.fault
            return self.answer(status, error(code, text, status))
        prefix = f"/2010-04-01/Accounts/{owner.account_sid}/"
        if self.path == prefix + "Messages.json":
            return self.answer(201, resource("SM", request, body=request.field("Body")))
        if self.path == prefix + "Calls.json":
            return self.answer(201, resource("CA", request))
        return self.answer(404, error(20404, "The requested resource was not found", 404))

    def answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def resource(prefix: str, request: TwilioRequest, **extra: Any) -> dict[str, Any]:
    return {
        "sid": prefix + uuid.uuid4().hex,
        "account_sid": ACCOUNT_SID,
        "to": request.field("To"),
        "from": request.field("From"),
        "status": "queued",
        **extra,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: TwilioServer


class TwilioServer:
    def __init__(self) -> None:
        self.account_sid, self.auth_token = ACCOUNT_SID, AUTH_TOKEN
        self.requests: list[TwilioRequest] = []
        self.fault: tuple[int, int, str] | None = None
        self._server = _Server((LOOPBACK, 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def fail_with(self, status: int, code: int, message: str = "injected by the test") -> None:
        self.fault = (status, code, message)

    def clear_fault(self) -> None:
        self.fault = None

    def reset(self) -> None:
        self.requests.clear()
        self.fault = None

    def calls(self) -> list[TwilioRequest]:
        return [r for r in self.requests if r.path.endswith("/Calls.json")]

    def texts(self) -> list[TwilioRequest]:
        return [r for r in self.requests if r.path.endswith("/Messages.json")]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="session")
def _twilio_server_session():
    server = TwilioServer()
    yield server
    server.close()


@pytest.fixture
def twilio_server(_twilio_server_session):
    server = _twilio_server_session
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def twilio_settings(twilio_server, comm_config, settings):
    settings.COMMUNICATION = {
        "SITE_URL": SITE_URL,
        "TWILIO": {
            "ACCOUNT_SID": ACCOUNT_SID,
            "AUTH_TOKEN": AUTH_TOKEN,
            "API_URL": twilio_server.url,
        },
    }
    comm_config.sms_provider = comm_config.voice_provider = "twilio"
    comm_config.save()
    return twilio_server
