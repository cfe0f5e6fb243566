"""Is a password in a known data breach? Have I Been Pwned's range API, with k-anonymity.

Only the first 5 hex characters of the password's SHA-1 leave the server
(`GET {PWNED_PASSWORDS_URL}{prefix}`); the service answers every suffix it knows under that
prefix (`SUFFIX:COUNT` lines) and the match is made here. `Add-Padding: true` makes it pad
the answer with fake suffixes of count 0, so the answer's size doesn't tell an observer of
the encrypted traffic which prefix was asked for. A padding line never counts as a breach.

The check is optional (`PWNED_PASSWORDS_URL` empty turns it off), bounded in time
(`PWNED_PASSWORDS_TIMEOUT`), and when the service can't be asked `PWNED_PASSWORDS_FAIL`
decides: `open` accepts the password and logs a warning, `closed` answers 503.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import time
import urllib.error
import urllib.request

from flask import has_app_context

from authserver.config import settings
from authserver.errors import ErrorCode, Problem, unavailable

log = logging.getLogger("authserver.pwned")

BREACHED_DETAIL = ("This password has appeared in a data breach and can't be used. "
                   "Choose a different one.")
UNAVAILABLE_DETAIL = ("The password could not be checked against known data breaches right "
                      "now. Try again shortly.")

# A real answer is a few hundred to about two thousand 40-byte lines; anything far larger is
# not the range API, and reading it would only cost us memory and time.
MAX_BODY_BYTES = 1024 * 1024
_CHUNK = 64 * 1024
_LINE = re.compile(r"([0-9A-Fa-f]{35}):([0-9]{1,12})")


class PwnedUnavailable(Exception):
    """The range API could not be asked, or did not answer like the range API."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # The prefix goes to the configured host and nowhere else.
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def breach_count(password: str, base_url: str, timeout: float) -> int:
    """How often `password` appears in the breach corpus (0: not found). Sends only the
    5-character SHA-1 prefix. Raises PwnedUnavailable when the service can't be asked."""
    # SHA-1 is what the range API indexes by; it protects nothing here.
    digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    body = _fetch(base_url + prefix, timeout)
    return _count(body, suffix)


def enforce(password: str) -> None:
    """Raise 422 breached_password when the (normalised) password is in a known breach.

    Does nothing outside an app (no settings to read) or when PWNED_PASSWORDS_URL is empty.
    When the service can't be asked: PWNED_PASSWORDS_FAIL=open accepts (logged), closed
    raises 503 service_unavailable.
    """
    if not has_app_context():
        return
    config = settings()
    if not config.pwned_passwords_url:
        return
    try:
        count = breach_count(password, config.pwned_passwords_url,
                             config.pwned_passwords_timeout)
    except PwnedUnavailable as exc:
        # The reason names no prefix and no password; the URL is our own setting.
        if config.pwned_passwords_fail == "closed":
            log.error("breached-password check unavailable (%s); refusing the password "
                      "(PWNED_PASSWORDS_FAIL=closed)", exc)
            raise unavailable(UNAVAILABLE_DETAIL) from None
        log.warning("breached-password check unavailable (%s); accepting the password "
                    "unchecked (PWNED_PASSWORDS_FAIL=open)", exc)
        return
    if count > 0:
        # No count in the message: NIST SP 800-63B asks only that the user be told why.
        raise Problem(422, ErrorCode.BREACHED_PASSWORD, BREACHED_DETAIL, field="password")


def _fetch(url: str, timeout: float) -> bytes:
    request = urllib.request.Request(url, headers={  # noqa: S310 (config: https/loopback)
        "Add-Padding": "true",
        "User-Agent": "authserver-pwned-check",
        "Accept": "text/plain",
    })
    # `timeout` bounds the connect and each read; the deadline bounds the whole answer, so a
    # server dripping bytes can't hold a sign-up much longer than the timeout.
    deadline = time.monotonic() + timeout
    try:
        with _opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise PwnedUnavailable(f"HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise PwnedUnavailable("answer too large")
                if time.monotonic() > deadline:
                    raise PwnedUnavailable("timed out")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        raise PwnedUnavailable(f"HTTP {exc.code}") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # URLError, refused connection, DNS, TLS, timeouts, dropped or malformed answers.
        raise PwnedUnavailable(type(exc).__name__) from None
    return b"".join(chunks)


def _count(body: bytes, suffix: str) -> int:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise PwnedUnavailable("answer is not the range format") from None
    found = 0
    lines = 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            # An HTML error page or captive portal is not "no breach": don't guess.
            raise PwnedUnavailable("answer is not the range format")
        lines += 1
        if match.group(1).upper() == suffix:
            found = int(match.group(2))  # 0 for a padding line: not a breach
    if lines == 0:
        raise PwnedUnavailable("empty answer")
    return found
