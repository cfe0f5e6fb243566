"""What SMS and e-mail backends share: the error types flows catch, and the outbox writer.

Flows only ever see these exceptions: `SenderUnavailable` (answer 503 service_unavailable),
`RecipientRejected` (answer 422), their base `SendError`, and `SendOutcomeUnknown`, the
`SenderUnavailable` raised when the message was handed over and the provider's answer lost
(codes.send treats it as sent). Their messages are our own short
text, safe to log and to show; the provider's raw text, URLs (which carry account SIDs) and
credentials never reach them. The provider's error code and HTTP/SMTP status are kept as
attributes for logging.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any

from authserver import clock


class SendError(Exception):
    """A message could not be sent."""

    def __init__(
        self,
        message: str,
        *,
        provider_code: int | str | None = None,
        provider_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider_code = provider_code
        self.provider_status = provider_status


class SenderUnavailable(SendError):
    """The provider is down, slow, refusing us, or misconfigured: flows answer 503."""


class SendOutcomeUnknown(SenderUnavailable):
    """The message was handed over whole, then the provider's answer was lost.

    Twilio got the full request and the read timed out or the connection dropped; the SMTP
    server got the message and its final dot, then never answered. The provider most likely
    delivered it, so codes.send keeps the code and the resend cooldown (a second send would
    be a second paid text, and deleting the code would make the delivered one answer 401).
    A plain SenderUnavailable, by contrast, means nothing went out. Everything that does not
    know this subclass still sees a SenderUnavailable: the cautious reading.
    """


class RecipientRejected(SendError):
    """The provider refused this recipient or message for good: flows answer 422."""


def require(config: Mapping[str, Any], backend: str, *names: str) -> None:
    """Fail at build time, naming the missing settings (never their values)."""
    missing = [name for name in names if not config.get(name)]
    if missing:
        raise ValueError(f"{backend} backend needs {', '.join(missing)} to be set")


def as_bool(value: Any) -> bool:
    """Settings come typed from config.py, but a hand-built mapping may hold env strings."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


class Outbox:
    """One JSON file per message in a folder, for local development and end-to-end tests.

    File names start with a zero-padded nanosecond timestamp, so `sorted(os.listdir(...))` is
    send order; a random suffix keeps them unique across processes. Each file is written under
    a dot-name ending in `.tmp` and renamed into place, so a reader that lists `*.json` never
    sees a partial file.
    """

    _lock = threading.Lock()
    _last_ns = 0

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)

    def write(
        self, channel: str, to: str, subject: str | None, text: str, html: str | None
    ) -> str:
        record = {
            "channel": channel,
            "to": to,
            "subject": subject,
            "text": text,
            "html": html,
            "sent_at": clock.now().isoformat(),
        }
        try:
            os.makedirs(self.directory, exist_ok=True)
            path = os.path.join(self.directory, self._name(channel))
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(record, fh, ensure_ascii=False, indent=2)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            raise SenderUnavailable(f"could not write the {channel} outbox file") from exc
        return path

    @classmethod
    def _name(cls, channel: str) -> str:
        # Real time rather than clock.now(): the order must follow sending even when a
        # test has moved the clock. Strictly increasing within the process, so two messages
        # in the same nanosecond (or after a clock step back) still sort in send order.
        with cls._lock:
            ns = max(time.time_ns(), cls._last_ns + 1)
            cls._last_ns = ns
        return f"{ns:020d}-{channel}-{secrets.token_hex(4)}.json"

