"""A cap on how many request threads of one process may wait on one channel's provider.

A hung SMTP server or SMS provider holds each request that sends through it for the whole
timeout (SMTP_TIMEOUT, SMS_PROVIDER_TIMEOUT). Without a cap, a burst of sign-in requests
takes every thread of the process and token checks queue behind them. The gate lets at
most SEND_CONCURRENCY calls per channel in at once; one more waits a moment (normal sends
take well under a second) and is then refused with SenderUnavailable, which the flows
already answer as 503 service_unavailable with Retry-After. Nothing was sent, so the code
row is dropped and the resend cooldown given back, as for any provider that refused.

The senders are wrapped in services.py; a sender swapped in by a test is not gated. Every
real provider call goes through a gate's slot, so the slot also times it for the metrics
(`timer`, authserver.metrics.observe_send: authserver_sender_duration_seconds{channel}).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from authserver.senders.base import SenderUnavailable
from authserver.senders.email import EmailSender
from authserver.senders.sms import SmsSender

log = logging.getLogger("authserver.senders")

#: Seconds a call waits for a free slot before it is refused: long enough to ride out a
#: burst of healthy sends, short enough that a hung provider's queue never holds threads.
SLOT_WAIT = 0.25


class SendGate:
    """At most `limit` calls at once through this gate, in this process."""

    def __init__(self, channel: str, limit: int, wait: float = SLOT_WAIT, *,
                 timer: Callable[[str], Callable[[], None]] | None = None) -> None:
        if limit < 1:
            raise ValueError("SEND_CONCURRENCY must be at least 1")
        self.channel = channel
        self.limit = limit
        self.wait = wait
        #: Called as a provider call starts; what it returns is called when the call ends.
        self.timer = timer
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self.wait):
            log.warning("%s provider busy: %d calls already waiting on it; refused",
                        self.channel, self.limit)
            raise SenderUnavailable(f"{self.channel} provider busy")
        done = self.timer(self.channel) if self.timer is not None else None
        try:
            yield
        finally:
            if done is not None:
                done()
            self._slots.release()


class GatedEmailSender:
    def __init__(self, sender: EmailSender, gate: SendGate) -> None:
        self.sender = sender
        self.gate = gate

    def send(self, to: str, subject: str, text: str, html: str | None) -> None:
        with self.gate.slot():
            self.sender.send(to, subject, text, html)


class GatedSmsSender:
    def __init__(self, sender: SmsSender, gate: SendGate) -> None:
        self.sender = sender
        self.gate = gate
        self.owns_codes = sender.owns_codes

    def send(self, to: str, text: str) -> None:
        with self.gate.slot():
            self.sender.send(to, text)

    def start_verification(self, to: str) -> None:
        with self.gate.slot():
            self.sender.start_verification(to)

    def check_verification(self, to: str, code: str) -> bool:
        # A check waits on the same provider as a send, so it takes the same slots.
        with self.gate.slot():
            return self.sender.check_verification(to, code)
