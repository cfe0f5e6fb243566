"""How gunicorn serves authserver: what gunicorn.conf.py (the Dockerfile's) puts together.

Kept here, importable and tested, so the config file stays a list of settings:

- the access-log format: the path without the query string, and no Referer, because a
  magic link's token travels in the query (`/auth/magic?token=…`) and a secret must never
  reach a log;
- limits on the request line and header fields, and the answers to requests gunicorn refuses
  itself (too long, too many headers, malformed): RFC 9457 problems like every other error;
- the start-up warning that in-memory rate limits are counted per worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from authserver.config import Settings
from authserver.errors import ErrorCode, Problem

#: gunicorn's default format with "%(r)s" (the request line, query included) replaced by the
#: method, the path alone and the protocol, and the Referer (which can carry a page's query,
#: a magic link's token among them) replaced by "-": still the "combined" layout.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "-" "%(a)s"'

# What gunicorn reads before the app sees anything. The longest legitimate URL is a magic
# link or a /login with redirect_to and a PKCE challenge: well under 4 KiB.
LIMIT_REQUEST_LINE = 4094
LIMIT_REQUEST_FIELDS = 50
LIMIT_REQUEST_FIELD_SIZE = 8190

_DETAILS = {
    400: "The request could not be understood.",
    403: "The request is forbidden.",
    414: "The request line (method and URL) is too long.",
    417: "The Expect header is not supported.",
    431: "The request's header fields are too large or too many.",
    500: "The server failed to handle this request.",
    501: "The request's transfer coding is not supported.",
}


def problem_bytes(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 answer carrying the problem document for `status`.

    The detail is fixed per status: gunicorn's own message can quote the request line or a
    header, which may hold a secret, so nothing of the request is echoed.
    """
    code = {403: ErrorCode.FORBIDDEN, 500: ErrorCode.INTERNAL_ERROR}.get(
        status, ErrorCode.INVALID_REQUEST)
    body = json.dumps(Problem(status, code, _DETAILS.get(status, _DETAILS[400])).body())
    head = (f"HTTP/1.1 {status} {reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "\r\n")
    return head.encode("latin-1") + body.encode()


def _write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    from gunicorn import util

    util.write_nonblock(sock, problem_bytes(int(status_int), str(reason)))


def answer_refusals_as_problems() -> None:
    """Make gunicorn's own refusals (414, 431, 400 …) problem documents instead of HTML.

    gunicorn writes them with `gunicorn.util.write_error`, looked up at call time by its
    workers; replacing it is the one hook gunicorn offers for the body of those answers.
    """
    from gunicorn import util

    util.write_error = _write_problem


def shared_limits_warning(workers: int, environ: Mapping[str, str] | None = None) -> str | None:
    """The warning to log when in-memory rate limits run in several worker processes.

    `memory://` keeps each process's counters to itself: with N workers a client gets N
    times every budget (5 codes an hour become 5N). Settings are read as the app reads
    them (the environment, through the same validation); a bad value is left to the app,
    which refuses to start and names it.
    """
    environ = os.environ if environ is None else environ
    wanted = {"RATELIMIT_STORAGE_URI", "RATELIMIT_ENABLED"}
    values: dict[str, Any] = {name.lower(): raw for name, raw in environ.items()
              if name.upper() in wanted and raw != ""}
    try:
        config = Settings.model_validate(values)
    except ValidationError:
        return None
    uri = config.ratelimit_storage_uri
    if workers <= 1 or not config.ratelimit_enabled or not uri.startswith("memory://"):
        return None
    return (f"RATELIMIT_STORAGE_URI is {uri} and gunicorn runs {workers} workers: each "
            f"worker counts on its own, so every rate limit is {workers} times what is "
            "configured. Set RATELIMIT_STORAGE_URI=redis://host:port/db to share one budget.")


def warn_if_limits_per_worker(server: Any) -> None:
    """gunicorn's `when_ready` hook: the master knows the worker count, however it was set."""
    message = shared_limits_warning(int(server.cfg.workers))
    if message:
        server.log.warning(message)
