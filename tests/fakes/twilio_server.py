"""A fake Twilio REST API on 127.0.0.1, good enough for the official SDK.

It answers the three calls authserver makes:

- POST /2010-04-01/Accounts/{AccountSid}/Messages.json  (To, From or MessagingServiceSid, Body)
  -> 201 with a message resource.
- POST /v2/Services/{ServiceSid}/Verifications  (To, Channel)
  -> 201 status "pending"; a 6-digit code is generated (kept per phone in `.codes`, and kept
  the same on a resend while pending, as Twilio does).
- POST /v2/Services/{ServiceSid}/VerificationCheck  (To, Code)
  -> 200 status "approved" (the verification is then gone) or "pending" for a wrong code;
  404 (Twilio error 20404) when nothing is pending; 429 (60202) after 5 wrong codes.

Every request is recorded in `.requests` (method, path, form, basic-auth user and password).
`fail_next(status, code, message)` makes the next request(s) answer a Twilio-style error;
`hang_next(seconds)` makes them send nothing at all until the client gives up (the request
is taken whole, recorded and acted on: a text accepted, a code made, its answer lost);
`drop_next()` reads and records the request, then closes the connection without a word.

Point the SDK at `.url` (both TWILIO_API_BASE_URL and TWILIO_VERIFY_BASE_URL; the paths do
not overlap). Use it as a context manager, or call start() and stop():

    with FakeTwilio() as twilio:
        config = {"SMS_BACKEND": "twilio", "TWILIO_API_BASE_URL": twilio.url, ...}
        ...
        assert twilio.messages[-1].form["Body"] == "..."
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

MAX_CHECK_ATTEMPTS = 5

# Well-formed, obviously fake identities for tests to configure the SDK with.
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "tok-" + "9f" * 14
MESSAGING_SERVICE_SID = "MG" + "3" * 32
VERIFY_SERVICE_SID = "VA" + "2" * 32
FROM_NUMBER = "+15005550006"

_MESSAGES = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
_VERIFICATIONS = re.compile(r"^/v2/Services/(?P<service>[^/]+)/Verifications$")
_CHECK = re.compile(r"^/v2/Services/(?P<service>[^/]+)/VerificationCheck$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, str]
    username: str | None
    password: str | None
    headers: dict[str, str] = field(repr=False)


@dataclass
class _Pending:
    code: str
    sid: str
    service: str
    wrong_attempts: int = 0


@dataclass
class _Planned:
    status: int = 0
    code: int = 0
    message: str = ""
    hang: float = 0.0
    drop: bool = False


class FakeTwilio:
    """The fake server. Thread-safe; one instance per test keeps the records apart."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        """`credentials`: when given, other basic-auth answers 401 (Twilio error 20003)."""
        self.credentials = credentials
        self.requests: list[RecordedRequest] = []
        self.codes: dict[str, str] = {}
        self._pending: dict[str, _Pending] = {}
        self._plan: list[_Planned] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            twilio = fake

        self._release.clear()
        self._server = _Server(("127.0.0.1", 0), Handler)
        # A short poll interval keeps stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        # Release hanging handlers first so shutdown does not wait for them.
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeTwilio is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- test controls ---------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        code: int,
        message: str = "Fake Twilio error",
        times: int = 1,
    ) -> None:
        """Answer the next `times` requests with `status` and a Twilio error body."""
        with self._lock:
            self._plan.extend(_Planned(status=status, code=code, message=message)
                              for _ in range(times))

    def hang_next(self, seconds: float, times: int = 1) -> None:
        """Accept and act on the next `times` requests, but answer nothing for `seconds` (or
        until stop)."""
        with self._lock:
            self._plan.extend(_Planned(hang=seconds) for _ in range(times))

    def drop_next(self, times: int = 1) -> None:
        """Take the next `times` requests whole, then close the connection unanswered."""
        with self._lock:
            self._plan.extend(_Planned(drop=True) for _ in range(times))

    @property
    def messages(self) -> list[RecordedRequest]:
        """The recorded Messages.json requests, oldest first."""
        return [r for r in self.requests if _MESSAGES.match(r.path)]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.codes.clear()
            self._pending.clear()
            self._plan.clear()

    # -- request handling (called from the server's threads) -------------------------------

    def _next_plan(self) -> _Planned | None:
        with self._lock:
            return self._plan.pop(0) if self._plan else None

    def _answer(self, req: RecordedRequest) -> tuple[int, dict[str, Any]]:
        if req.method != "POST":
            return _error(405, 20004, "Method not allowed")
        if self.credentials is not None and (req.username, req.password) != self.credentials:
            return _error(401, 20003, "Authenticate")
        if match := _MESSAGES.match(req.path):
            return self._message(match["account"], req.form)
        if match := _VERIFICATIONS.match(req.path):
            return self._start(match["service"], req.form)
        if match := _CHECK.match(req.path):
            return self._check(match["service"], req.form)
        return _error(404, 20404, f"The requested resource {req.path} was not found")

    def _message(self, account: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not form.get("To"):
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return _error(400, 21602, "Message body is required.")
        sid = "SM" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC), usegmt=True)
        return 201, {
            "sid": sid,
            "account_sid": account,
            "to": form["To"],
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form["Body"],
            "status": "queued" if form.get("From") else "accepted",
            "num_segments": "1",
            "num_media": "0",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            "subresource_uris": {},
        }

    def _start(self, service: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to = form.get("To", "")
        if not re.fullmatch(r"\+[1-9]\d{6,14}", to):
            return _error(400, 60200, "Invalid parameter `To`")
        if form.get("Channel") not in {"sms", "call", "email", "whatsapp"}:
            return _error(400, 60200, "Invalid parameter `Channel`")
        with self._lock:
            pending = self._pending.get(to)
            if pending is None or pending.service != service:
                pending = _Pending(
                    code=f"{secrets.randbelow(10**6):06d}",
                    sid="VE" + secrets.token_hex(16),
                    service=service,
                )
                self._pending[to] = pending
            self.codes[to] = pending.code
        return 201, self._verification(pending, to, form["Channel"], "pending")

    def _check(self, service: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        to, code = form.get("To", ""), form.get("Code", "")
        with self._lock:
            pending = self._pending.get(to)
            if pending is None or pending.service != service:
                return _error(
                    404, 20404,
                    f"The requested resource /Services/{service}/VerificationCheck was not found",
                )
            if pending.wrong_attempts >= MAX_CHECK_ATTEMPTS:
                return _error(429, 60202, "Max check attempts reached")
            if secrets.compare_digest(code, pending.code):
                del self._pending[to]
                status = "approved"
            else:
                pending.wrong_attempts += 1
                status = "pending"
        return 200, self._verification(pending, to, "sms", status)

    @staticmethod
    def _verification(pending: _Pending, to: str, channel: str, status: str) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "sid": pending.sid,
            "service_sid": pending.service,
            "account_sid": "AC" + "0" * 32,
            "to": to,
            "channel": channel,
            "status": status,
            "valid": status == "approved",
            "amount": None,
            "payee": None,
            "date_created": now,
            "date_updated": now,
            "send_code_attempts": [],
            "url": f"https://verify.twilio.com/v2/Services/{pending.service}/Verifications/"
                   f"{pending.sid}",
        }


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and closed its socket is expected here, not a failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    twilio: FakeTwilio
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        username, password = _basic_auth(self.headers.get("Authorization"))
        req = RecordedRequest(
            method=self.command,
            path=self.path.split("?", 1)[0],
            form=dict(parse_qsl(body, keep_blank_values=True)),
            username=username,
            password=password,
            headers=dict(self.headers.items()),
        )
        fake = self.twilio
        with fake._lock:
            fake.requests.append(req)
        plan = fake._next_plan()
        if plan is not None and plan.hang:
            fake._answer(req)  # taken and acted on (a text sent, a code made), never answered
            fake._release.wait(plan.hang)
            self.close_connection = True
            return
        if plan is not None and plan.drop:
            self.close_connection = True
            return
        if plan is not None:
            status, payload = _error(plan.status, plan.code, plan.message)
        else:
            status, payload = fake._answer(req)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Keep pytest output clean; the records in FakeTwilio.requests are the log.
        pass


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None, None
    return user, password

