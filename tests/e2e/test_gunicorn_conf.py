"""gunicorn.conf.py over real HTTP: what the Dockerfile's server logs, refuses and warns about,
and a disabled admin refused by real gunicorn workers on MySQL.

Servers here are started as the Dockerfile starts them, `gunicorn -c gunicorn.conf.py …`,
with their output (the access log is on stdout) in a file the tests read.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import PASSWORD
from tests.e2e.conftest import BIN, ROOT, LiveServer, free_port, start_gunicorn

SECRET = "SECRETVALUE0123456789abcdef"


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """Factory: gunicorn(workers=1, **env) -> LiveServer, on a migrated SQLite database."""
    started: list[LiveServer] = []

    def start(workers: int = 1, **overrides: Any) -> LiveServer:
        port = free_port()
        instance = tmp_path / f"instance-{port}"
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{instance}/authserver.db",
            "SECRET_KEY": "gunicorn-conf-secret-key-0123456789abcdef",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "SMS_BACKEND": "file",
            "EMAIL_BACKEND": "file",
            "OUTBOX_DIR": str(tmp_path / "outbox"),
            "FLASK_APP": "authserver",
        }
        env.pop("WEB_CONCURRENCY", None)
        env.update({key: str(value) for key, value in overrides.items()})
        instance.mkdir()
        server = start_gunicorn(env, tmp_path, workers=workers, threads=2,
                                config="gunicorn.conf.py")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _logged(server: LiveServer, needle: str, timeout: float = 5.0) -> str:
    """The server's output once it holds `needle` (gunicorn writes the access log after the
    answer), or what it holds when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()
        if needle in log or time.monotonic() > deadline:
            return log
        time.sleep(0.1)


def _raw(server: LiveServer, request: bytes, *, body_chunks: Iterator[bytes] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes over a socket; the status, headers and body of the answer."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        for chunk in body_chunks or ():
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed before reading it all: fine
        sock.shutdown(socket.SHUT_WR) if body_chunks is None else None
        data = b""
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
                if b"\r\n\r\n" in data:
                    head, _, rest = data.partition(b"\r\n\r\n")
                    length = [line for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")]
                    if length and len(rest) >= int(length[0].split(b":")[1]):
                        break
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def _problem(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict[str, Any]:
    assert status == expected, body[:300]
    assert headers["content-type"].startswith("application/problem+json"), headers
    document = json.loads(body)
    assert document["status"] == expected and document["code"] == "invalid_request"
    return document


# -- secrets in logs -----------------------------------------------------------------------
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_access_log_never_holds_the_magic_link_token(gunicorn, log_format):
    server = gunicorn(LOG_FORMAT=log_format)
    page = requests.get(f"{server.url}/auth/magic?token={SECRET}", timeout=10,
                        headers={"Referer": f"{server.url}/auth/magic?token={SECRET}"})
    assert page.status_code == 410  # an unknown link: the page says so
    log = _logged(server, "/auth/magic")
    # The request is logged, path only.
    if log_format == "text":
        assert '"GET /auth/magic HTTP/1.1" 410' in log, log
    else:
        assert '"message": "GET /auth/magic 410"' in log, log
    assert SECRET not in log and "token=" not in log


# -- start-up warning ----------------------------------------------------------------------
def test_memory_limits_with_several_workers_warn_at_start(gunicorn):
    server = gunicorn(workers=2, RATELIMIT_STORAGE_URI="memory://")
    log = _logged(server, "RATELIMIT_STORAGE_URI")
    assert "RATELIMIT_STORAGE_URI is memory:// and gunicorn runs 2 workers" in log, log
    assert "2 times" in log


@pytest.mark.parametrize("env", [{}, {"RATELIMIT_ENABLED": "false"}])
def test_no_warning_when_the_limits_are_not_split(gunicorn, env):
    workers = 2 if env else 1  # one worker, or limits turned off
    server = gunicorn(workers=workers, **env)
    requests.get(server.url + "/healthz", timeout=10)
    assert "RATELIMIT_STORAGE_URI is" not in _logged(server, "/healthz ")


# -- oversized requests --------------------------------------------------------------------
def test_a_request_line_over_gunicorns_limit_is_a_414_problem(gunicorn):
    server = gunicorn()
    target = "/auth/magic?token=" + SECRET + "x" * 5000
    answer = _raw(server, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    document = _problem(*answer, expected=414)
    assert SECRET not in json.dumps(document)
    assert SECRET not in _logged(server, "414")


def test_too_many_or_too_large_header_fields_are_431_problems(gunicorn):
    server = gunicorn()
    many = "".join(f"X-Filler-{i}: {i}\r\n" for i in range(60))
    _problem(*_raw(server, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()),
             expected=431)
    huge = "X-Huge: " + "a" * 9000 + "\r\n"
    _problem(*_raw(server, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{huge}\r\n".encode()),
             expected=431)


def test_a_huge_header_or_cookie_within_gunicorns_limit_is_a_431_problem(gunicorn):
    server = gunicorn()
    for headers in ({"Authorization": "Bearer " + "a" * 6000},
                    {"Cookie": "authserver_session=" + "a" * 6000},
                    {f"X-Part-{i}": "b" * 3000 for i in range(6)}):
        response = requests.get(server.url + "/api/v1/me", headers=headers, timeout=10)
        assert response.status_code == 431, headers.keys()
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_request"


def test_an_oversized_chunked_body_is_a_413_problem_not_read_without_bound(gunicorn):
    server = gunicorn()
    head = (b"POST /api/v1/signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 16384

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 1 MiB, sixteen times MAX_CONTENT_LENGTH
            yield b"%x\r\n%s\r\n" % (len(chunk), chunk)
        yield b"0\r\n\r\n"

    status, headers, body = _raw(server, head, body_chunks=chunks())
    assert status == 413, body[:300]
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 413
    # The same route still answers a body within the limit.
    small = requests.post(server.url + "/api/v1/signin", timeout=10,
                          data=iter([b'{"email": "a@example.com", ', b'"password": "x"}']),
                          headers={"Content-Type": "application/json"})
    assert small.status_code == 401


# -- disabled users, over real HTTP on MySQL -----------------------------------------------
def test_a_disabled_admin_is_refused_at_once_over_http_on_mysql(live_server):
    # A password alone opens the admin API here: this is about disabling, not the second
    # factor MFA_REQUIRED_ROLES asks of admins by default (tests/e2e/test_mfa_http.py).
    server = live_server(MFA_REQUIRED_ROLES="")
    subprocess.run([str(BIN / "flask"), "--app", "authserver", "users", "create",
                    "root@example.com", "--role", "admin", "--password-stdin"],
                   cwd=ROOT, env=server.env, input=PASSWORD.encode(), check=True,
                   capture_output=True, timeout=60)
    signed_in = requests.post(server.url + "/api/v1/signin", timeout=10,
                              json={"email": "root@example.com", "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    auth = {"Authorization": "Bearer " + signed_in.json()["access_token"]}
    assert requests.get(server.url + "/api/v1/admin/users", headers=auth,
                        timeout=10).status_code == 200
    # The state a sign-in racing a disable left behind: the flag set, the session open.
    engine = create_engine(server.env["DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE users SET disabled = 1"))
    finally:
        engine.dispose()
    for path in ("/api/v1/admin/users", "/api/v1/isAuthenticated", "/api/v1/me"):
        response = requests.get(server.url + path, headers=auth, timeout=10)
        assert response.status_code == 401, path
        assert response.json()["code"] == "invalid_token"
