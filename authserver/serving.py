"""How gunicorn serves authserver: what gunicorn.conf.py (the Dockerfile's) puts together.

Kept here, importable and tested, so the config file stays a list of settings:

- the access-log format: the path without the query string, and no Referer, because a
  magic link's token travels in the query (`/auth/magic?token=…`) and a secret must never
  reach a log;
- limits on the request line and header fields, and the answers to requests gunicorn refuses
  itself (too long, too many headers, malformed): RFC 9457 problems like every other error;
- the start-up warning that in-memory rate limits are counted per worker;
- the log format (LOG_FORMAT, json by default here: `logging_config`) and the metrics'
  multiprocess folder (PROMETHEUS_MULTIPROC_DIR: `metrics_directory`, emptied as the master
  starts, `worker_exited` when a worker goes).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, MutableMapping
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


# -- logs and metrics ----------------------------------------------------------------------
#: Set in the environment when gunicorn.conf.py made the metrics folder itself (and so
#: removes it when the master exits).
_OWN_METRICS_DIR = "AUTHSERVER_OWN_METRICS_DIR"


def logging_config(environ: MutableMapping[str, str] | None = None) -> dict[str, Any] | None:
    """LOG_FORMAT defaults to json under gunicorn (set in the environment, so the app reads
    the same); the logconfig_dict that makes gunicorn's own logs that format too."""
    from authserver.logs import gunicorn_logconfig

    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if not env.get("LOG_FORMAT"):
        env["LOG_FORMAT"] = "json"
    return gunicorn_logconfig(env["LOG_FORMAT"].strip().lower())


def metrics_directory(environ: MutableMapping[str, str] | None = None) -> str:
    """The folder every worker writes its metric values to (PROMETHEUS_MULTIPROC_DIR): the
    one given, or a fresh temporary one. Set in the environment before any worker imports
    prometheus_client, which picks its file-backed values at import."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="authserver-metrics-")
        env[_OWN_METRICS_DIR] = env["PROMETHEUS_MULTIPROC_DIR"]
    return env["PROMETHEUS_MULTIPROC_DIR"]


def clean_metrics_directory(server: Any = None) -> None:
    """gunicorn's `on_starting` hook: values a previous master's workers left in the folder
    would be added to this one's; start from an empty folder. Not for a master started by
    USR2 (`master_pid` set): it takes over from a running one whose workers still count."""
    if getattr(server, "master_pid", 0):
        return
    directory = metrics_directory()
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and name.endswith(".db"):
            os.unlink(path)


def worker_exited(server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook: a dead worker's live gauges stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def remove_own_metrics_directory(server: Any = None) -> None:
    """gunicorn's `on_exit` hook: the temporary folder made by `metrics_directory` goes,
    unless a new master (USR2, `reexec_pid`) goes on with it."""
    if getattr(server, "reexec_pid", 0):
        return
    own = os.environ.get(_OWN_METRICS_DIR)
    if own and own == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(own, ignore_errors=True)
