"""E-mail senders: one small protocol, three backends chosen by EMAIL_BACKEND.

- console: logs each mail on the "authserver.email" logger at INFO (the local default, so a
  developer can follow the magic link). Never use it in production: it logs links and codes.
- file: one JSON file per message in OUTBOX_DIR (see base.Outbox).
- smtp: smtplib, one connection per message, with a bounded timeout (SMTP_TIMEOUT),
  implicit TLS (SMTP_SSL or port 465) or STARTTLS (SMTP_STARTTLS), and login when
  SMTP_USERNAME is set.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, Protocol, runtime_checkable

from authserver import clock
from authserver.senders.base import (
    Outbox,
    RecipientRejected,
    SenderUnavailable,
    SendOutcomeUnknown,
    as_bool,
    require,
)

log = logging.getLogger("authserver.email")

DEFAULT_MAIL_FROM = "authserver <no-reply@localhost>"
DEFAULT_SMTP_TIMEOUT = 10.0
IMPLICIT_TLS_PORT = 465


@runtime_checkable
class EmailSender(Protocol):
    def send(self, to: str, subject: str, text: str, html: str | None) -> None:
        """Send one message to one address; `html`, when given, is the rich alternative."""
        ...


class ConsoleEmailSender:
    def send(self, to: str, subject: str, text: str, html: str | None) -> None:
        log.info("E-mail to %s, subject %r:\n%s", to, subject, text)


class FileEmailSender:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def send(self, to: str, subject: str, text: str, html: str | None) -> None:
        self.outbox.write("email", to, subject, text, html)


class SmtpEmailSender:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        mail_from: str = DEFAULT_MAIL_FROM,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        implicit_tls: bool = False,
        timeout: float = DEFAULT_SMTP_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.mail_from = mail_from
        self.username = username or None
        self.password = password or ""
        self.starttls = starttls
        self.implicit_tls = implicit_tls
        self.timeout = timeout
        # Message-IDs name our own domain; make_msgid() without one would ask DNS for the
        # host's FQDN on every message.
        self.msgid_domain = parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"

    def build_message(self, to: str, subject: str, text: str, html: str | None) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.mail_from
        # Built from its parts, never parsed: a header parser would decode encoded-words and
        # read display names or lists out of the text, and deliver somewhere else.
        msg["To"] = recipient_address(to)
        msg["Subject"] = subject
        msg["Date"] = format_datetime(clock.now())
        msg["Message-ID"] = make_msgid(domain=self.msgid_domain)
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        return msg

    def send(self, to: str, subject: str, text: str, html: str | None) -> None:
        msg = self.build_message(to, subject, text, html)
        smtp: _Tracking | None = None
        try:
            smtp = self._connect()
            try:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                # The envelope recipient is the validated address itself; left to
                # send_message, it would be re-read from the To header.
                smtp.send_message(msg, to_addrs=[to])
            finally:
                _close(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            log.warning("SMTP server refused the recipient: %s", codes)
            if codes and all(500 <= code < 600 for code in codes):
                raise RecipientRejected(
                    "mail server refused the address", provider_code=codes[0]
                ) from None
            # 4xx: greylisting, full mailbox, rate limit: worth trying again later.
            raise SenderUnavailable(
                "mail server deferred the address", provider_code=codes[0] if codes else None
            ) from None
        except smtplib.SMTPResponseException as exc:
            # Connect, HELO, AUTH, MAIL FROM or DATA refused: our setup or their server.
            log.warning("SMTP server refused the message: %s", exc.smtp_code)
            raise SenderUnavailable(
                "mail server refused the message", provider_code=exc.smtp_code
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None and smtp.handed_over:
                # The whole message and its final dot went out, then the server's answer
                # never came (timeout, dropped connection): it most likely took the message.
                log.warning("SMTP server took the message, its answer was lost: %s",
                            type(exc).__name__)
                raise SendOutcomeUnknown("mail server did not confirm the message") from None
            # Refused connection, DNS failure, timeout, TLS failure, dropped connection,
            # STARTTLS or AUTH not offered. The cause's text can name hosts; keep it out.
            log.warning("SMTP server unreachable: %s", type(exc).__name__)
            raise SenderUnavailable("mail server unreachable") from None

    def _connect(self) -> _Tracking:
        if self.implicit_tls:
            return _TrackingSSL(
                self.host, self.port, timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        return _Tracking(self.host, self.port, timeout=self.timeout)


class _Tracking(smtplib.SMTP):
    """Knows whether the message itself went out: the line between "nothing was sent" and
    "sent, answer lost", which smtplib's exceptions alone don't draw.

    `data()` sends the DATA command (a str), waits for 354, then sends the quoted message
    ending in CRLF.CRLF (bytes) in one `send()`; once that returns, the server holds a
    complete message and may deliver it whatever happens next.
    """

    handed_over = False
    _in_data = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self._in_data = True
        try:
            return super().data(msg)
        finally:
            self._in_data = False

    def send(self, s: Any) -> None:
        super().send(s)
        if self._in_data and isinstance(s, bytes | bytearray):
            self.handed_over = True


class _TrackingSSL(_Tracking, smtplib.SMTP_SSL):
    pass


def recipient_address(to: str) -> Address:
    """The header address for an already-validated `local@domain`, built from its two parts.

    Defence in depth behind identifiers.normalize_email: anything a mail library would
    decode or rewrite (encoded-words, header specials, control or space characters) is
    refused here as RecipientRejected rather than sent to whatever it decodes to.
    """
    local, at, domain = to.rpartition("@")
    if not at or not local or not domain or _unsafe(to):
        raise RecipientRejected("not a plain e-mail address")
    try:
        return Address(username=local, domain=domain)
    except ValueError:
        raise RecipientRejected("not a plain e-mail address") from None


def _unsafe(address: str) -> bool:
    if "=?" in address:
        return True
    return any(char in '<>()[]\\,;:"' or not char.isprintable() or char.isspace()
               for char in address)


def _close(smtp: smtplib.SMTP) -> None:
    # Once the server has accepted the message, a failed QUIT must not turn it into an
    # error (the user would retry and get two mails); unlike `with SMTP(...)`, swallow it.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def build_email_sender(config: Mapping[str, Any]) -> EmailSender:
    """Build the sender EMAIL_BACKEND names (console, file, smtp)."""
    backend = config.get("EMAIL_BACKEND") or "console"
    if backend == "console":
        return ConsoleEmailSender()
    if backend == "file":
        return FileEmailSender(Outbox(config.get("OUTBOX_DIR") or "outbox"))
    if backend == "smtp":
        require(config, backend, "SMTP_HOST")
        port = int(config.get("SMTP_PORT") or 25)
        implicit_tls = as_bool(config.get("SMTP_SSL", False)) or port == IMPLICIT_TLS_PORT
        starttls = as_bool(config.get("SMTP_STARTTLS", False))
        if implicit_tls and starttls:
            raise ValueError("SMTP_STARTTLS and implicit TLS (SMTP_SSL or port 465) exclude "
                             "each other: the connection is already encrypted")
        return SmtpEmailSender(
            config["SMTP_HOST"],
            port,
            mail_from=config.get("MAIL_FROM") or DEFAULT_MAIL_FROM,
            username=config.get("SMTP_USERNAME"),
            password=config.get("SMTP_PASSWORD"),
            starttls=starttls,
            implicit_tls=implicit_tls,
            timeout=float(config.get("SMTP_TIMEOUT") or DEFAULT_SMTP_TIMEOUT),
        )
    raise ValueError(f"unknown EMAIL_BACKEND {backend!r}: expected console, file or smtp")
