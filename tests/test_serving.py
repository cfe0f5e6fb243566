"""authserver/serving.py: what gunicorn.conf.py configures, checked without a server (the
e2e tests in tests/e2e/test_gunicorn_conf.py run it for real)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

from authserver import serving

ROOT = Path(__file__).resolve().parents[1]


def test_the_access_log_format_has_no_query_string_or_referer():
    fmt = serving.ACCESS_LOG_FORMAT
    assert "%(U)s" in fmt  # the path
    for atom in ("%(r)s", "%(q)s", "%(f)s", "{raw_uri}"):
        assert atom not in fmt


def test_gunicorn_conf_uses_the_serving_settings():
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert conf["access_log_format"] == serving.ACCESS_LOG_FORMAT
    assert conf["accesslog"] == "-"
    assert conf["limit_request_line"] == serving.LIMIT_REQUEST_LINE
    assert conf["limit_request_fields"] == serving.LIMIT_REQUEST_FIELDS
    assert conf["limit_request_field_size"] == serving.LIMIT_REQUEST_FIELD_SIZE
    assert conf["when_ready"] is serving.warn_if_limits_per_worker


@pytest.mark.parametrize(("workers", "environ", "warns"), [
    (4, {}, True),  # the default storage is memory://
    (2, {"RATELIMIT_STORAGE_URI": "memory://"}, True),
    (2, {"RATELIMIT_STORAGE_URI": ""}, True),  # empty means the default
    (1, {}, False),
    (4, {"RATELIMIT_STORAGE_URI": "redis://redis:6379/0"}, False),
    (4, {"RATELIMIT_ENABLED": "false"}, False),
    (4, {"RATELIMIT_ENABLED": "not-a-bool"}, False),  # the app itself refuses to start
])
def test_shared_limits_warning(workers, environ, warns):
    message = serving.shared_limits_warning(workers, environ)
    assert (message is not None) == warns
    if warns:
        assert f"{workers} workers" in message and "redis://" in message


def test_gunicorns_own_refusals_are_problems_that_echo_nothing():
    raw = serving.problem_bytes(431, "Request Header Fields Too Large")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Content-Type: application/problem+json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    document = json.loads(body)
    assert document["status"] == 431 and document["code"] == "invalid_request"
    assert json.loads(serving.problem_bytes(500, "Internal Server Error").partition(
        b"\r\n\r\n")[2])["code"] == "internal_error"
