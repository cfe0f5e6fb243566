"""Request ids, the JSON log format, and no secret or identifier in any log line.
(gunicorn's access log in JSON, over real HTTP: tests/e2e/test_metrics_logs_http.py.)"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from authserver import logs
from authserver.auth import require_auth
from authserver.logs import JsonFormatter
from tests.conftest import PASSWORD
from tests.flows.magic_helpers import last_mail
from tests.flows.sms_helpers import last_code
from tests.helpers import bearer

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


# -- request ids ---------------------------------------------------------------------------
def test_every_answer_carries_a_request_id_a_fresh_one_when_none_is_given(client):
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert HEX_ID.match(first) and HEX_ID.match(second) and first != second


@pytest.mark.parametrize("given", ["abc-123", "trace.4f2e_01", "A" * 128])
def test_a_sane_request_id_is_kept(client, given):
    assert client.get("/healthz", headers={"X-Request-ID": given}
                      ).headers["X-Request-ID"] == given


@pytest.mark.parametrize("given", ["", "A" * 129, "has space", "new\nline", "<script>",
                                   "a;b", "é"])
def test_an_insane_request_id_is_replaced(client, given):
    answered = client.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": given}
                          ).headers["X-Request-ID"]
    assert HEX_ID.match(answered) and answered != given


def test_errors_carry_the_request_id_too(app, client):
    @app.get("/boom-logs-test")
    def boom() -> Any:
        raise RuntimeError("boom")

    for method, path, status in (("GET", "/no/such/page", 404), ("POST", "/api/v1/signin", 400),
                                 ("GET", "/api/v1/me", 401), ("GET", "/boom-logs-test", 500)):
        response = client.open(path, method=method, headers={"X-Request-ID": "req-1"},
                               json={} if method == "POST" else None)
        assert response.status_code == status, path
        assert response.headers["X-Request-ID"] == "req-1", path


# -- the JSON format -------------------------------------------------------------------------
def _record(message: str, *args: Any, level: int = logging.INFO, exc_info: Any = None
            ) -> logging.LogRecord:
    return logging.LogRecord("authserver.test", level, __file__, 1, message, args, exc_info)


def test_a_json_line_has_time_level_logger_message():
    line = JsonFormatter().format(_record("hello %s\nsecond line", "world"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "INFO" and entry["logger"] == "authserver.test"
    assert entry["message"] == "hello world\nsecond line"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", entry["time"])
    assert "request_id" not in entry  # outside a request


def test_a_json_line_inside_a_request_names_the_request_route_and_user(app, client, signup):
    @app.get("/api/v1/log-probe")
    @require_auth
    def probe() -> Any:
        logging.getLogger("authserver.test").warning("inside")
        return {}

    token = signup()["access_token"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())

    logger = logging.getLogger("authserver.test")
    logger.addHandler(handler)
    try:
        response = client.get("/api/v1/log-probe", headers={"X-Request-ID": "probe-1",
                                                            **bearer(token)})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 200
    entry = json.loads(stream.getvalue().splitlines()[0])
    assert entry["request_id"] == "probe-1" and entry["route"] == "/api/v1/log-probe"
    assert entry["user_id"]
    assert entry["message"] == "inside" and entry["level"] == "WARNING"


def test_an_exception_goes_in_one_line():
    try:
        raise ValueError("bad")
    except ValueError:
        line = JsonFormatter().format(_record("failed", exc_info=sys.exc_info()))
    entry = json.loads(line)
    assert "ValueError: bad" in entry["exception"] and "Traceback" in entry["exception"]


def test_gunicorn_access_atoms_become_fields_without_the_query_string():
    atoms = {"h": "10.0.0.1", "m": "GET", "U": "/auth/magic", "q": "token=SECRET",
             "r": "GET /auth/magic?token=SECRET HTTP/1.1", "s": "410", "H": "HTTP/1.1",
             "D": 1234, "B": 99, "a": 'curl/8 \\"x\\"', "f": "https://x/?token=SECRET",
             "{authserver.request_id}e": "rid-1", "{authserver.route}e": "/auth/magic",
             "{authserver.user_id}e": "user-1", "{x-request-id}o": "rid-1"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", (),
                               None)
    record.args = atoms
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /auth/magic 410" and entry["status"] == 410
    assert entry["path"] == "/auth/magic" and entry["route"] == "/auth/magic"
    assert entry["request_id"] == "rid-1" and entry["user_id"] == "user-1"
    assert entry["duration_ms"] == 1.234 and entry["user_agent"] == 'curl/8 "x"'
    assert "SECRET" not in json.dumps(entry)


def test_the_development_servers_request_line_loses_its_query_string():
    logs.configure_werkzeug()
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, '"%s" %s %s',
                               ("GET /auth/magic?token=SECRET HTTP/1.1", "200", "-"), None)
    for filt in logging.getLogger("werkzeug").filters:
        filt.filter(record)
    assert record.getMessage() == '"GET /auth/magic HTTP/1.1" 200 -'


@pytest.mark.parametrize(("address", "masked"), [("ada@example.com", "a***@example.com"),
                                                 ("nobody", "***")])
def test_mask_email(address, masked):
    assert logs.mask_email(address) == masked


def test_gunicorn_logconfig_is_json_or_gunicorns_own():
    assert logs.gunicorn_logconfig("text") is None
    config = logs.gunicorn_logconfig("json")
    assert config is not None
    assert config["formatters"]["json"]["()"] == "authserver.logs.JsonFormatter"
    assert config["loggers"]["gunicorn.access"]["propagate"] is False


# -- nothing secret in the logs ----------------------------------------------------------------
@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of every logger, down to DEBUG, as the JSON lines production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    ours = logging.getLogger("authserver")
    old = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ours.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old[0])
        ours.setLevel(old[1])


def test_no_sign_in_of_any_kind_logs_a_secret_or_an_identifier(app, client, captured, clock):
    outbox = app.config["OUTBOX_DIR"]
    email, phone = "ada.lovelace@example.com", "+16502530000"
    secrets: list[str] = [PASSWORD, email, phone, phone[1:], phone[-7:]]

    # Password: sign-up, a wrong and a right sign-in, a refresh.
    signed_up = client.post("/api/v1/signup", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201
    wrong = "Wrong-password-horse-9"
    secrets.append(wrong)
    assert client.post("/api/v1/signin", json={"email": email, "password": wrong}
                       ).status_code == 401
    signed_in = client.post("/api/v1/signin", json={"email": email, "password": PASSWORD})
    assert signed_in.status_code == 200
    tokens = signed_in.get_json()
    refreshed = client.post("/api/v1/token/refresh",
                            json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    secrets += [tokens["access_token"], tokens["refresh_token"],
                refreshed.get_json()["refresh_token"]]

    # SMS: a code, a wrong one, the right one.
    assert client.post("/api/v1/otp/request", json={"phone": phone}).status_code == 202
    code = last_code(outbox, phone)
    wrong_code = f"{(int(code) + 1) % 10**6:06d}"
    secrets.append(code)
    assert client.post("/api/v1/otp/verify", json={"phone": phone, "code": wrong_code}
                       ).status_code == 401
    sms = client.post("/api/v1/otp/verify", json={"phone": phone, "code": code})
    assert sms.status_code == 200, sms.get_json()
    secrets += [sms.get_json()["access_token"], sms.get_json()["refresh_token"]]

    # E-mail: a link, then a code.
    assert client.post("/api/v1/magic-link/request", json={"email": email}).status_code == 202
    link_token, _ = last_mail(outbox, email)
    secrets.append(link_token)
    by_link = client.post("/api/v1/magic-link/verify", json={"token": link_token})
    assert by_link.status_code == 200, by_link.get_json()
    clock.travel(60)  # past the resend cooldown
    assert client.post("/api/v1/magic-link/request", json={"email": email}).status_code == 202
    _, mail_code = last_mail(outbox, email)
    secrets.append(mail_code)
    by_code = client.post("/api/v1/magic-link/verify", json={"email": email, "code": mail_code})
    assert by_code.status_code == 200, by_code.get_json()
    secrets += [by_link.get_json()["refresh_token"], by_code.get_json()["refresh_token"]]

    text = captured.getvalue()
    lines = text.splitlines()
    assert len(lines) > 10  # the flows did log
    for line in lines:
        json.loads(line)
    leaked = [secret for secret in secrets if secret in text]
    assert leaked == [], [line for line in lines if any(s in line for s in leaked)][:5]
