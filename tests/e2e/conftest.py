"""A real server over real HTTP: gunicorn serving wsgi:app in a subprocess, on MySQL or SQLite.

`live_server(**env)` starts one (migrations first, as in production) and returns its base
URL; every server started in a test is stopped at the end of that test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import requests
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, url: str, process: subprocess.Popen[bytes], env: dict[str, str],
                 log_path: Path) -> None:
        self.url = url
        self.process = process
        self.env = env
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_gunicorn(env: dict[str, str], log_dir: Path, *, workers: int = 2, threads: int = 4,
                   config: str | None = None, ready: str = "/readyz",
                   wait: float = 30, migrate: bool = True) -> LiveServer:
    """Migrate `env`'s database (unless `migrate` is False: the caller did), start gunicorn
    on PUBLIC_BASE_URL's port and wait (up to `wait` seconds) until `ready` answers 200.
    `config`: a gunicorn config file (e.g. gunicorn.conf.py)."""
    port = int(env["PUBLIC_BASE_URL"].rsplit(":", 1)[1])
    if migrate:
        subprocess.run([str(BIN / "flask"), "--app", "authserver", "db", "upgrade"],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    log_path = log_dir / f"server-{port}.log"
    command = [str(BIN / "gunicorn"), *(["-c", config] if config else []),
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--threads", str(threads), "--timeout", "30", "wsgi:app"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_path.open("wb"),
                               stderr=subprocess.STDOUT)
    server = LiveServer(f"http://127.0.0.1:{port}", process, env, log_path)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + server.log())
        try:
            if requests.get(server.url + ready, timeout=min(wait / 10, 5)).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError("server did not become ready:\n" + server.log())


@pytest.fixture
def live_server(tmp_path: Path, mysql_url: str) -> Iterator[Callable[..., LiveServer]]:
    """Factory: live_server(DATABASE_URL=..., SMS_BACKEND=..., ...) -> LiveServer."""
    started: list[LiveServer] = []
    databases: list[str] = []
    server_url = make_url(mysql_url)

    def fresh_database() -> str:
        """Each server gets an empty database, so migrations run as on a new install."""
        name = f"{server_url.database}_e2e{len(databases)}"
        databases.append(name)
        _mysql(server_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return server_url.set(database=name).render_as_string(hide_password=False)

    def start(**overrides: Any) -> LiveServer:
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": overrides.pop("DATABASE_URL", None) or fresh_database(),
            "SECRET_KEY": "live-server-secret-key-0123456789abcdef",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "SMS_BACKEND": "file",
            "EMAIL_BACKEND": "file",
            "OUTBOX_DIR": str(tmp_path / "outbox"),
            "FLASK_APP": "authserver",
            "PWNED_PASSWORDS_URL": "",  # offline; a test opts in with a loopback fake
        }
        env.update({key: str(value) for key, value in overrides.items()})
        server = start_gunicorn(env, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for name in databases:
        _mysql(server_url, f"DROP DATABASE IF EXISTS `{name}`")


def _mysql(url: Any, statement: str) -> None:
    conn = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username,
                           password=url.password or "")
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
