"""The production stack without Docker: two gunicorn replicas (gunicorn.conf.py, 2 workers
each) on one MySQL database and one Redis, behind nginx running the repository's own
deploy/nginx/authserver.conf (the file docker-compose.yml mounts), with PROXY_FIX_HOPS=1 as
the compose file sets it.

Clients are told apart as nginx tells them apart, by the address they connect from: each test
client binds its own loopback source address (127.0.0.2, 127.0.0.3, ...), nginx writes that
address into X-Forwarded-For, and the replicas count limits against it.

Checked: sign-in through the proxy; a per-IP limit counted once per real client across both
replicas (a client's own X-Forwarded-For changes nothing; another client still passes); a
logout on one replica refused on the other at once. `Stack.replica_url(i)` reaches replica
`i` directly, past nginx, for checks of one replica (e.g. its /metrics).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from sqlalchemy.engine import make_url

from tests.e2e.conftest import ROOT, LiveServer, _mysql, free_port, start_gunicorn
from tests.fakes.private_servers import REDIS_AVAILABLE, PrivateRedis

PASSWORD = "correct horse battery staple"
NGINX_CONF = ROOT / "deploy" / "nginx" / "authserver.conf"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
#: The per-IP password sign-in budget of this stack: small, so a client runs out quickly.
SIGNIN_PER_IP = 6


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is not installed (.ci/run installs it)")
    pytest.skip(f"{what} is not installed")


class SourceAddress(HTTPAdapter):
    """Connect from a chosen loopback address: to nginx, a different client machine."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def render_nginx_conf(upstreams: list[int], listen: int) -> str:
    """deploy/nginx/authserver.conf with the compose service names replaced by loopback ports
    and nginx listening on `listen`; everything else exactly as shipped."""
    text = NGINX_CONF.read_text()
    for number, port in enumerate(upstreams, start=1):
        text, count = re.subn(rf"\bserver authserver-{number}:8000\b",
                              f"server 127.0.0.1:{port}", text)
        assert count == 1, f"authserver-{number}:8000 is not an upstream server of {NGINX_CONF}"
    text, count = re.subn(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{listen};", text,
                          flags=re.MULTILINE)
    assert count == 1, f"{NGINX_CONF} does not `listen 80;`"
    return text


@dataclass
class Stack:
    url: str
    replicas: list[LiveServer]
    nginx_log: Path
    clients: dict[str, requests.Session] = field(default_factory=dict)

    def replica_url(self, index: int) -> str:
        """Replica `index` (0 or 1) directly, past nginx."""
        return self.replicas[index].url

    def client(self, address: str) -> requests.Session:
        """A client connecting from `address` (127.0.0.2, 127.0.0.3, ...)."""
        if address not in self.clients:
            session = requests.Session()
            session.mount("http://", SourceAddress(address))
            self.clients[address] = session
        return self.clients[address]

    def proxied(self) -> list[dict[str, Any]]:
        """nginx's access log, one dict a request (the shipped JSON format)."""
        lines = self.nginx_log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def _start_nginx(conf_dir: Path, upstreams: list[int],
                 port: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    (conf_dir / "authserver.conf").write_text(render_nginx_conf(upstreams, port))
    temp = [f"{kind}_temp_path {conf_dir / kind};" for kind in
            ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    (conf_dir / "nginx.conf").write_text("\n".join([
        "daemon off;",
        "user root;" if os.geteuid() == 0 else "",
        "worker_processes 1;",
        f"pid {conf_dir / 'nginx.pid'};",
        "error_log stderr warn;",
        "events { worker_connections 256; }",
        "http {",
        *temp,
        f"    include {conf_dir / 'authserver.conf'};",
        "}",
    ]) + "\n")
    command = [str(NGINX), "-p", str(conf_dir), "-c", str(conf_dir / "nginx.conf"),
               "-e", "stderr"]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    log = conf_dir / "nginx.log"
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("nginx exited:\n" + log.read_text())
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url, log
        except requests.RequestException:
            pass
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError("nginx did not answer:\n" + log.read_text())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mysql_url: str) -> Iterator[Stack]:
    if not NGINX:
        _missing("nginx")
    if not REDIS_AVAILABLE:  # like the fault tests: a private redis-server, or skip
        pytest.skip("redis-server is not installed")
    folder = tmp_path_factory.mktemp("stack")
    server = make_url(mysql_url)
    database = f"{server.database}_stack"
    _mysql(server, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    replicas: list[LiveServer] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        with PrivateRedis() as redis:
            nginx_port = free_port()
            for _ in range(2):
                port = free_port()
                env = {
                    **os.environ,
                    "DATABASE_URL": server.set(database=database).render_as_string(
                        hide_password=False),
                    "SECRET_KEY": "stack-test-secret-key-0123456789abcdef",
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                    # One issuer for both, as behind one public origin.
                    "JWT_ISSUER": f"http://127.0.0.1:{nginx_port}",
                    "RATELIMIT_STORAGE_URI": redis.url,
                    "PROXY_FIX_HOPS": "1",
                    "SIGNIN_LIMIT_PER_IP": f"{SIGNIN_PER_IP}/minute",
                    "SIGNIN_LIMIT_PER_ACCOUNT": "1000/minute",
                    "SIGNUP_LIMIT_PER_IP": "1000/hour",
                    "SMS_BACKEND": "file",
                    "EMAIL_BACKEND": "file",
                    "OUTBOX_DIR": str(folder / "outbox"),
                    "FLASK_APP": "authserver",
                    "PWNED_PASSWORDS_URL": "",
                }
                env.pop("WEB_CONCURRENCY", None)
                replicas.append(start_gunicorn(env, folder, workers=2, threads=4,
                                               config="gunicorn.conf.py"))
            conf_dir = folder / "nginx"
            conf_dir.mkdir()
            nginx, url, log = _start_nginx(
                conf_dir, [int(r.url.rsplit(":", 1)[1]) for r in replicas], nginx_port)
            yield Stack(url, replicas, log)
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for replica in replicas:
            replica.stop()
        _mysql(server, f"DROP DATABASE IF EXISTS `{database}`")


def _sign_up(stack: Stack, address: str) -> str:
    email = f"ada-{uuid.uuid4().hex[:10]}@example.com"
    answer = stack.client(address).post(stack.url + "/api/v1/signup", timeout=10,
                                        json={"email": email, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return email


def _sign_in(session: requests.Session, base: str, email: str,
             password: str = PASSWORD, **kwargs: Any) -> requests.Response:
    return session.post(base + "/api/v1/signin", json={"email": email, "password": password},
                        timeout=10, **kwargs)


def test_sign_in_through_the_proxy(stack: Stack) -> None:
    client = stack.client("127.0.0.2")
    email = _sign_up(stack, "127.0.0.2")
    answer = _sign_in(client, stack.url, email)
    assert answer.status_code == 200, answer.text
    tokens = answer.json()
    me = client.get(stack.url + "/api/v1/me", timeout=10,
                    headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200 and me.json()["email"] == email
    # The same token is good at either replica: one database, one issuer, one key set.
    for index in (0, 1):
        direct = requests.get(stack.replica_url(index) + "/api/v1/me", timeout=10,
                              headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert direct.status_code == 200
    # nginx's access log: JSON lines, the client's own address, no query string.
    client.get(stack.url + "/healthz?token=SECRETVALUE", timeout=10)
    logged = stack.proxied()
    assert any(line["client"] == "127.0.0.2" and line["path"] == "/api/v1/signin"
               and line["status"] == 200 for line in logged)
    assert "SECRETVALUE" not in stack.nginx_log.read_text()
    # /metrics is per replica: nginx answers it itself (not the app's problem document);
    # scrapes go to stack.replica_url(i) + "/metrics".
    metrics = client.get(stack.url + "/metrics", timeout=10)
    assert metrics.status_code == 404
    assert "problem" not in metrics.headers["Content-Type"]
    unknown = client.get(stack.url + "/no-such-page", timeout=10)
    assert unknown.status_code == 404
    assert unknown.headers["Content-Type"].startswith("application/problem+json")


def test_limits_count_per_real_client_across_both_replicas(stack: Stack) -> None:
    email = _sign_up(stack, "127.0.0.9")
    attacker, other = stack.client("127.0.0.3"), stack.client("127.0.0.4")
    before = len(stack.proxied())
    # Wrong passwords for several accounts: only the per-IP budget can run out.
    answers = [_sign_in(attacker, stack.url, f"nobody-{n}@example.com", "wrong").status_code
               for n in range(SIGNIN_PER_IP)]
    assert answers == [401] * SIGNIN_PER_IP
    assert _sign_in(attacker, stack.url, email).status_code == 429
    # A forged X-Forwarded-For is replaced by nginx, so it buys no fresh budget.
    forged = _sign_in(attacker, stack.url, email, headers={"X-Forwarded-For": "203.0.113.7"})
    assert forged.status_code == 429
    assert forged.headers.get("Retry-After")
    # The budget was spent over both replicas (nginx took turns), and counted once.
    upstreams = {line["upstream"] for line in stack.proxied()[before:]
                 if line["client"] == "127.0.0.3" and line["path"] == "/api/v1/signin"}
    assert upstreams == {stack.replica_url(0).removeprefix("http://"),
                         stack.replica_url(1).removeprefix("http://")}
    # Another client, same account, still signs in (at either replica).
    for _ in range(2):
        assert _sign_in(other, stack.url, email).status_code == 200


def test_logout_on_one_replica_is_refused_on_the_other_at_once(stack: Stack) -> None:
    client = stack.client("127.0.0.5")
    email = _sign_up(stack, "127.0.0.5")
    tokens = _sign_in(client, stack.url, email).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    first, second = stack.replica_url(0), stack.replica_url(1)
    assert requests.get(second + "/api/v1/me", headers=bearer, timeout=10).status_code == 200
    assert requests.post(first + "/api/v1/logout", headers=bearer,
                         timeout=10).status_code == 204
    assert requests.get(second + "/api/v1/me", headers=bearer, timeout=10).status_code == 401
    refreshed = requests.post(second + "/api/v1/token/refresh", timeout=10,
                              json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    # And through the proxy, whichever replica answers.
    for _ in range(2):
        assert client.get(stack.url + "/api/v1/me", headers=bearer,
                          timeout=10).status_code == 401
