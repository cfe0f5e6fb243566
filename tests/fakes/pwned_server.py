"""A stand-in for Have I Been Pwned's range API on 127.0.0.1, answering in the real format.

    with FakePwned() as pwned:
        pwned.breach("Tr0ub4dor&3", 42)       # a breached password, 42 sightings
        pwned.pad("my unique phrase")         # its suffix only as a padding line (count 0)
        config = {"PWNED_PASSWORDS_URL": pwned.url}
        ...
        pwned.requests[-1].path, pwned.requests[-1].headers

`GET /range/{5 hex}` answers `text/plain` lines `SUFFIX:COUNT` (35 upper-case hex, CRLF
between lines, no trailing CRLF, as the real API does), the known suffixes under the prefix
plus, when the request carries `Add-Padding: true`, filler suffixes with count 0 up to
`padded_lines`. Failure modes: `status` (answer that HTTP status), `delay` (seconds to wait
before answering), `body` (answer these bytes instead).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"/range/([0-9A-F]{5})")


def sha1_hex(password: str) -> str:
    return hashlib.sha1(password.encode("utf-8")).hexdigest().upper()


@dataclass(frozen=True)
class RangeRequest:
    path: str
    headers: dict[str, str]


class FakePwned:
    host = "127.0.0.1"

    def __init__(self, padded_lines: int = 800) -> None:
        self.padded_lines = padded_lines
        self.known: dict[str, int] = {}  # full SHA-1 (upper-case hex) -> count
        self.requests: list[RangeRequest] = []
        self.status = 200
        self.delay = 0.0
        self.body: bytes | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def breach(self, password: str, count: int) -> None:
        self.known[sha1_hex(password)] = count

    def pad(self, password: str) -> None:
        """List the password's suffix as a padding line (count 0): not a breach."""
        self.known[sha1_hex(password)] = 0

    @property
    def url(self) -> str:
        assert self._server is not None, "FakePwned is not started"
        return f"http://{self.host}:{self._server.server_address[1]}/range/"

    def start(self) -> FakePwned:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake.requests.append(RangeRequest(self.path, dict(self.headers.items())))
                if fake.delay:
                    time.sleep(fake.delay)
                match = _RANGE.fullmatch(self.path)
                if fake.status != 200 or match is None:
                    self._answer(fake.status if fake.status != 200 else 400, b"error")
                    return
                if fake.body is not None:
                    self._answer(200, fake.body)
                    return
                padding = self.headers.get("Add-Padding", "").lower() == "true"
                self._answer(200, fake._range(match.group(1), padding).encode("ascii"))

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePwned:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _range(self, prefix: str, padding: bool) -> str:
        lines = {digest[5:]: count for digest, count in self.known.items()
                 if digest.startswith(prefix)}
        # Real, unrelated sightings under the prefix, as every real prefix has hundreds.
        for _ in range(3):
            lines.setdefault(secrets.token_hex(18)[:35].upper(), 1 + secrets.randbelow(50))
        if padding:
            while len(lines) < self.padded_lines:
                lines.setdefault(secrets.token_hex(18)[:35].upper(), 0)
        return "\r\n".join(f"{suffix}:{count}" for suffix, count in sorted(lines.items()))
