"""Logs: one JSON object per line (LOG_FORMAT=json) or plain text, and a request id on each.

- Every request gets an id: the client's `X-Request-ID` when it is sane (`REQUEST_ID`: up to
  128 letters, digits, dots, dashes, underscores), else a new uuid4 in hex. It is echoed in
  the response's `X-Request-ID` (errors too: the WSGI middleware sees every answer) and put
  on every line logged while the request runs.
- `JsonFormatter` writes `time` (ISO 8601, UTC), `level`, `logger`, `message`, and, when
  known, `request_id`, `user_id`, `route` (the URL rule, never the raw path), `status` and
  `duration_ms`. gunicorn.conf.py gives gunicorn's error and access logs this formatter too
  (`logconfig_dict`): an access line is `{"message": "GET /api/v1/me 200", "method", "path"
  (no query string: a magic link's token is in one), "status", "duration_ms", "request_id",
  "route", "user_id", "remote_addr", "user_agent", …}`; the app hands the route, the user
  and the request id to gunicorn through the WSGI environ.
- Under `flask run` (`make run`, text) werkzeug logs each request line itself; its query
  string is cut off the same way (`_NoQueryString`).

Nothing here logs a code, a token, a password, a phone or an address: the flows log ids
and masked numbers (phones.mask); `mask_email` is there for addresses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

from authserver import events, metrics

#: A client's X-Request-ID is kept when it matches this; anything else gets a fresh id.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
HEADER = "X-Request-ID"

# WSGI environ keys the app fills for gunicorn's access log (its `{key}e` atoms).
ENV_REQUEST_ID = "authserver.request_id"
ENV_ROUTE = "authserver.route"
ENV_USER_ID = "authserver.user_id"

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = ("request_id", "user_id", "route", "status", "duration_ms")


def request_id_of(environ: Mapping[str, Any]) -> str:
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if isinstance(given, str) and REQUEST_ID.match(given) else uuid.uuid4().hex


def mask_email(address: str) -> str:
    """`ada@example.com` → `a***@example.com`: enough to tell two apart in a log, no more."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


class RequestIdMiddleware:
    """Outermost WSGI layer: gives each request its id, echoes it, and times the answer for
    the metrics (it sees every answer Flask makes, error pages included)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:
        rid = request_id_of(environ)
        environ[ENV_REQUEST_ID] = rid
        started = time.perf_counter()

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != HEADER.lower()]
            headers.append((HEADER, rid))
            try:
                code = int(status.split(None, 1)[0])
            except ValueError:
                code = 500
            metrics.observe_request(environ, code, time.perf_counter() - started)
            return start_response(status, headers, exc_info) if exc_info else \
                start_response(status, headers)

        return self.app(environ, start)


def current_request_id() -> str | None:
    if not has_request_context():
        return None
    rid = request.environ.get(ENV_REQUEST_ID)
    return rid if isinstance(rid, str) else None


def current_user_id() -> str | None:
    """The user this request is about, when known: the access token's, or the one an event
    named (a sign-in that just succeeded)."""
    if not has_request_context():
        return None
    claims = g.get("claims")
    user_id = getattr(claims, "user_id", None) or g.get("log_user_id")
    return str(user_id) if user_id else None


def _context() -> dict[str, Any]:
    if not has_request_context():
        return {}
    rule = request.url_rule
    return {"request_id": current_request_id(), "user_id": current_user_id(),
            "route": rule.rule if rule is not None else None}


def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": _iso(record.created), "level": record.levelname,
                               "logger": record.name}
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            out.update(_access_fields(record.args))
        else:
            out["message"] = record.getMessage()
            out.update({k: v for k, v in _context().items() if v is not None})
            for name in _FIELDS:
                value = getattr(record, name, None)
                if value is not None:
                    out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, ensure_ascii=False, default=str)


def _access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """gunicorn's access-log atoms (glogging.Logger.atoms), as fields. The path is PATH_INFO
    (no query string) and no Referer is kept: both may carry a magic link's token."""

    def atom(key: str) -> Any:
        value = dict.get(atoms, key) if isinstance(atoms, dict) else atoms.get(key)
        return value.replace('\\"', '"') if isinstance(value, str) else value

    status = atom("s")
    with contextlib.suppress(TypeError, ValueError):
        status = int(status)
    micros = atom("D")
    fields = {
        "message": f"{atom('m')} {atom('U')} {status}",
        "request_id": atom(f"{{{ENV_REQUEST_ID}}}e") or atom("{x-request-id}o"),
        "user_id": atom(f"{{{ENV_USER_ID}}}e"),
        "route": atom(f"{{{ENV_ROUTE}}}e"),
        "status": status,
        "duration_ms": round(micros / 1000, 3) if isinstance(micros, int) else None,
        "method": atom("m"),
        "path": atom("U"),
        "protocol": atom("H"),
        "bytes": atom("B"),
        "remote_addr": atom("h"),
        "user_agent": atom("a"),
    }
    return {k: v for k, v in fields.items() if v not in (None, "", "-")}


class TextFormatter(logging.Formatter):
    """The classic line, with the request id at the end while a request runs."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = current_request_id()
        return f"{line} [request_id={rid}]" if rid else line


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


class _NoQueryString(logging.Filter):
    """werkzeug's development server logs the request line, query string included (a magic
    link's token): keep the path only."""

    _QUERY = re.compile(r"\?\S*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args and isinstance(record.args[0], str):
            record.args = (self._QUERY.sub("", record.args[0]), *record.args[1:])
        return True


def configure_werkzeug() -> None:
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _NoQueryString) for f in logger.filters):
        logger.addFilter(_NoQueryString())


def gunicorn_logconfig(log_format: str) -> dict[str, Any] | None:
    """gunicorn's `logconfig_dict` for `log_format`: JSON on every logger (gunicorn's error
    log on stderr, its access log and the app's on stdout); None for text (gunicorn's own
    setup, with serving.ACCESS_LOG_FORMAT)."""
    if log_format != "json":
        return None
    stream = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "authserver.logs.JsonFormatter"}},
        "handlers": {"stdout": {**stream, "stream": "ext://sys.stdout"},
                     "stderr": {**stream, "stream": "ext://sys.stderr"}},
        "root": {"level": "WARNING", "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }


def _remember_user(event: events.Event) -> None:
    if event.user_id and has_request_context() and event.type in (
            events.EventType.SIGNIN_SUCCEEDED, events.EventType.USER_CREATED,
            events.EventType.MFA_REQUIRED):
        g.log_user_id = event.user_id


def init_app(app: Flask) -> None:
    """Request ids, and the route and user handed to gunicorn's access log."""
    configure_werkzeug()
    app.wsgi_app = RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    events.listen(app, _remember_user)

    @app.after_request
    def hand_to_access_log(response: Response) -> Response:
        environ = request.environ
        environ[ENV_ROUTE] = metrics.route_label(environ)
        user_id = current_user_id()
        if user_id:
            environ[ENV_USER_ID] = user_id
        return response
