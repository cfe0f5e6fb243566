"""A webhook receiver on 127.0.0.1 that checks Standard Webhooks signatures, written from the
spec (not from authserver's code), and records what it accepted.

    with WebhookReceiver(SECRET) as receiver:
        config = {"WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET}
        ...
        receiver.ids()            # webhook-id of every accepted delivery, in arrival order
        receiver.events[0].body   # the parsed JSON body

A delivery is accepted (recorded, answered `status`, 204 by default) only when its
`webhook-signature` holds a `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` that
matches, the key being the base64-decoded part of a `whsec_` secret. A bad signature is
answered 401 and kept in `rejected`. `delay` holds every answer back that many seconds
(recorded only after the wait, as a receiver that processes then acknowledges); `status`
other than 2xx answers that status and records the attempt in `refused`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    id: str
    timestamp: str
    signature: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]


def verify(secret: str, headers: dict[str, str], raw: bytes) -> bool:
    """Standard Webhooks verification (any of the space-separated `v1,` signatures)."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") \
        else secret.encode()
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit():
        return False
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + raw
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in headers.get("webhook-signature", "").split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


class WebhookReceiver:
    host = "127.0.0.1"

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.status = 204
        self.delay = 0.0
        self.events: list[Delivery] = []
        self.refused: list[Delivery] = []
        self.rejected: list[Delivery] = []
        self.arrived = threading.Event()  # set at each request's arrival (before any delay)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "WebhookReceiver is not started"
        return f"http://{self.host}:{self._server.server_address[1]}/hooks"

    def ids(self) -> list[str]:
        with self._lock:
            return [event.id for event in self.events]

    def start(self, port: int = 0) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                receiver.arrived.set()
                if receiver.delay:
                    time.sleep(receiver.delay)
                delivery = Delivery(headers.get("webhook-id", ""),
                                    headers.get("webhook-timestamp", ""),
                                    headers.get("webhook-signature", ""),
                                    json.loads(raw or b"null"), raw, headers)
                if not verify(receiver.secret, headers, raw):
                    status, kept = 401, receiver.rejected
                elif not 200 <= receiver.status < 300:
                    status, kept = receiver.status, receiver.refused
                else:
                    status, kept = receiver.status, receiver.events
                with receiver._lock:
                    kept.append(delivery)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
