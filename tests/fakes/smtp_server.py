"""A catch-all SMTP server on 127.0.0.1 (aiosmtpd), for tests that send real mail.

    with FakeSmtp() as smtp:
        config = {"EMAIL_BACKEND": "smtp", "SMTP_HOST": smtp.host, "SMTP_PORT": smtp.port}
        ...
        msg = smtp.messages[-1]          # email.message.EmailMessage (policy.default)
        assert msg["To"] == "ann@example.com"
        smtp.envelopes[-1].rcpt_tos       # what the client said in RCPT TO

Controls:
- `refuse` (set of addresses, case-insensitive): RCPT TO for them answers
  "550 5.1.1 mailbox unavailable"; `defer` answers "450 4.2.1 try again later".
- `FakeSmtp(credentials=("user", "secret"))` offers AUTH PLAIN/LOGIN without TLS and accepts
  only that pair (535 otherwise); `.logins` records the user names that signed in.
- `messages`, `envelopes` and `logins` grow as mail arrives; `wait_for(n)` blocks until
  n messages are in (the server runs in its own thread).
- `hang_after_data = seconds`: take the message whole (it is recorded in `messages`), then
  never answer the final dot, as a server that delivered but whose answer got lost;
  `hang_at_rcpt = seconds`: never answer RCPT TO (nothing handed over). Both end at stop().
- `BlackHole()`: a port that accepts TCP connections and never says a word (no greeting).

STARTTLS is not offered, so point a sender at it with SMTP_STARTTLS false.
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class ReceivedEnvelope:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.fake.hang_at_rcpt:
            await self.fake._hang(self.fake.hang_at_rcpt)
        if address.lower() in {a.lower() for a in self.fake.refuse}:
            return "550 5.1.1 mailbox unavailable"
        if address.lower() in {a.lower() for a in self.fake.defer}:
            return "450 4.2.1 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        # Wire mail uses CRLF; the email package expects "\n" lines, or bodies keep "\r".
        message = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
        self.fake._received(
            ReceivedEnvelope(str(envelope.mail_from), list(envelope.rcpt_tos), data),
            message,  # type: ignore[arg-type]
        )
        if self.fake.hang_after_data:
            await self.fake._hang(self.fake.hang_after_data)
        return "250 Message accepted for delivery"


class _EphemeralController(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's readiness check uses it."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class FakeSmtp:
    host = "127.0.0.1"

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.refuse: set[str] = set()
        self.defer: set[str] = set()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[ReceivedEnvelope] = []
        self.logins: list[str] = []
        self.hang_after_data = 0.0
        self.hang_at_rcpt = 0.0
        self._released = threading.Event()
        self._arrived = threading.Condition()
        kwargs: dict[str, Any] = {}
        if credentials is not None:
            # Plain-text AUTH is fine on loopback and spares the tests a certificate.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _EphemeralController(
            _Handler(self),
            hostname=self.host,
            port=0,
            # A fixed name: the default asks DNS for this machine's FQDN.
            server_hostname="fake-smtp.test",
            **kwargs,
        )
        self._running = False

    def app_settings(self, **more: Any) -> dict[str, Any]:
        """An app's settings that send its mail here over SMTP, as "Example Auth"."""
        return {"EMAIL_BACKEND": "smtp", "SMTP_HOST": self.host, "SMTP_PORT": self.port,
                "SMTP_TIMEOUT": 3.0, "MAIL_FROM": "Example Auth <no-reply@auth.example.test>",
                "APP_NAME": "Example Auth", **more}

    def start(self) -> FakeSmtp:
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        self._released.set()
        if self._running:
            self._controller.stop()
            self._running = False

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._running, "FakeSmtp is not started"
        return self._controller.port

    def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {len(self.messages)}")
            return list(self.messages)

    async def _hang(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._released.is_set():
            await asyncio.sleep(0.05)

    def _received(self, envelope: ReceivedEnvelope, message: EmailMessage) -> None:
        with self._arrived:
            self.envelopes.append(envelope)
            self.messages.append(message)
            self._arrived.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            pair = (auth_data.login.decode(), auth_data.password.decode())
            if pair == self.credentials:
                self.logins.append(pair[0])
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


class BlackHole:
    """A loopback port that accepts connections (the kernel's backlog does) and never speaks:
    a firewall or a wedged server that leaves the client waiting for the SMTP greeting."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind((self.host, 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()
