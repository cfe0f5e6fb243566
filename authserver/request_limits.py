"""Bounds on what a request may send, checked before anything reads it.

gunicorn refuses over-long request lines and header fields first (gunicorn.conf.py); what
reaches the app is held here to the same line under any server, and answered as a problem:

- headers: one larger than any real client sends, or too many bytes of them in all, is
  `431` (an access token is under 1 KiB, the session cookie holds an id);
- a streamed body (`Transfer-Encoding: chunked`, no `Content-Length`): read here up to
  MAX_CONTENT_LENGTH and no further; a longer one is `413`. Werkzeug bounds such a stream
  too, but silently cuts it at the limit, so an oversized JSON body would answer a puzzling
  `400` and a form would lose its tail.
"""

from __future__ import annotations

import io

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from authserver.errors import ErrorCode, Problem

MAX_HEADER_BYTES = 4096
MAX_HEADERS_BYTES = 16384
_READ_SIZE = 64 * 1024


def refuse_oversized_headers() -> None:
    """431 for a request whose headers are larger than any real client sends."""
    total = 0
    for name, value in request.headers.items():
        size = len(name) + len(value)
        total += size
        if size > MAX_HEADER_BYTES or total > MAX_HEADERS_BYTES:
            raise Problem(431, ErrorCode.INVALID_REQUEST,
                          "The request's header fields are too large.")


def bound_streamed_body() -> None:
    """413 for a streamed body over MAX_CONTENT_LENGTH; a shorter one is buffered and given
    a Content-Length, so everything after reads it as an ordinary body."""
    environ = request.environ
    if environ.get("CONTENT_LENGTH") or "chunked" not in environ.get(
            "HTTP_TRANSFER_ENCODING", "").lower():
        return
    limit = request.max_content_length
    if limit is None:
        return
    stream = environ["wsgi.input"]
    body = bytearray()
    while len(body) <= limit:
        part = stream.read(min(_READ_SIZE, limit + 1 - len(body)))
        if not part:
            break
        body += part
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(bytes(body))
    environ["CONTENT_LENGTH"] = str(len(body))


def init_app(app: Flask) -> None:
    # Before every other before-request function: nothing (CSRF reading a form, the session
    # reading its cookie) sees an oversized header or body before it is refused.
    funcs = app.before_request_funcs.setdefault(None, [])
    funcs[0:0] = [refuse_oversized_headers, bound_streamed_body]
