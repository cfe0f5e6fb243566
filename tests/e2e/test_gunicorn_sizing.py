"""gunicorn.conf.py's processes and threads: started as the Dockerfile and the README start it
(`gunicorn -c gunicorn.conf.py --bind … wsgi:app`, no --workers or --threads), two clients
that send their bodies slowly do not stall the server; a bare `gunicorn wsgi:app` (one
synchronous worker) is stalled by them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.e2e.conftest import BIN, ROOT, free_port


def _conf(tmp_path: Path, **env: str) -> dict[str, Any]:
    """gunicorn.conf.py's values as gunicorn would read them, in a process of its own: the
    file sets variables in its process's environment, which must not leak into this one."""
    names = ("workers", "threads", "timeout", "graceful_timeout", "forwarded_allow_ips")
    code = ("import json, runpy; conf = runpy.run_path('gunicorn.conf.py'); "
            f"print(json.dumps({{name: conf[name] for name in {names!r}}}))")
    environ = {key: value for key, value in os.environ.items()
               if key not in {"WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS"}}
    environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)  # its own folder, not a new temp one
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**environ, **env},
                          capture_output=True, text=True, timeout=60, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_workers_from_web_concurrency_or_the_cores(tmp_path: Path) -> None:
    conf = _conf(tmp_path, WEB_CONCURRENCY="3")
    assert conf["workers"] == 3 and conf["threads"] == 8
    conf = _conf(tmp_path)
    assert conf["workers"] == max(2, len(os.sched_getaffinity(0)))
    assert conf["timeout"] == 30 and conf["graceful_timeout"] == 30
    assert conf["forwarded_allow_ips"] == "127.0.0.1,::1"
    assert _conf(tmp_path, FORWARDED_ALLOW_IPS="*")["forwarded_allow_ips"] == "*"


@contextmanager
def _gunicorn(tmp_path: Path, *args: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ,
           "DATABASE_URL": f"sqlite:///{tmp_path}/authserver.db",
           "SECRET_KEY": "gunicorn-sizing-secret-key-0123456789abcdef",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
           "FLASK_APP": "authserver",
           # One worker process: what keeps it answering is its threads.
           "WEB_CONCURRENCY": "1"}
    subprocess.run([str(BIN / "flask"), "--app", "authserver", "db", "upgrade"], cwd=ROOT,
                   env=env, check=True, capture_output=True, timeout=120)
    log = tmp_path / f"gunicorn-{port}.log"
    process = subprocess.Popen([str(BIN / "gunicorn"), *args, "--bind", f"127.0.0.1:{port}",
                                "wsgi:app"], cwd=ROOT, env=env, stdout=log.open("wb"),
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def _slow_body(url: str) -> socket.socket:
    """A client that sends its headers and the first byte of a 20-byte body, then waits."""
    port = int(url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /api/v1/signin HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 20\r\n\r\n{")
    return sock


def _answers_while_two_clients_dawdle(url: str) -> bool:
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(_slow_body(url))
        time.sleep(0.5)
        try:
            return requests.get(url + "/healthz", timeout=3).status_code == 200
        except requests.RequestException:
            return False


def test_two_slow_bodies_do_not_stall_the_shipped_config(tmp_path: Path) -> None:
    with _gunicorn(tmp_path, "-c", "gunicorn.conf.py") as url:
        assert _answers_while_two_clients_dawdle(url)


def test_two_slow_bodies_stall_a_bare_gunicorn(tmp_path: Path) -> None:
    # What the README warns about: the default synchronous worker waits on the first body.
    # (`-c /dev/null`: gunicorn would otherwise read ./gunicorn.conf.py by itself.)
    with _gunicorn(tmp_path, "-c", "/dev/null") as url:
        assert not _answers_while_two_clients_dawdle(url)
