"""Issue 13's "Done when" over real HTTP: nginx (the shipped config) in front of two gunicorn
replicas (gunicorn.conf.py: JSON logs, multiprocess metrics) on MySQL and Redis, a webhook
worker (`flask webhooks run`) and a receiver that is down while the sign-ins happen.

Sign-ins of all three kinds (password, SMS code, e-mailed link) show up in each replica's
/metrics, in GET /api/v1/admin/audit and at the receiver, signed, once each, though it was
down when they happened; the logs are JSON lines carrying the request id the answer echoes.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from tests.e2e.conftest import BIN, ROOT, LiveServer, _mysql, free_port, start_gunicorn
from tests.e2e.test_stack_nginx import NGINX, _start_nginx
from tests.fakes.private_servers import REDIS_AVAILABLE, PrivateRedis
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.flows.magic_helpers import last_mail
from tests.flows.sms_helpers import last_code

PASSWORD = "correct horse battery staple"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # 24 bytes, base64
PHONE = "+14155550142"
#: How long the receiver is down while the sign-ins happen (their webhooks wait and retry).
RECEIVER_DOWN = 12


@pytest.fixture
def observed(tmp_path: Path, mysql_url: str) -> Iterator[dict[str, Any]]:
    if not NGINX:
        pytest.skip("nginx is not installed (.ci/run installs Debian's nginx)")
    if not REDIS_AVAILABLE:
        pytest.skip("redis-server is not installed")
    server = make_url(mysql_url)
    database = f"{server.database}_observed"
    _mysql(server, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    replicas: list[LiveServer] = []
    processes: list[subprocess.Popen[Any]] = []
    receiver_port = free_port()
    try:
        with PrivateRedis() as redis:
            nginx_port = free_port()
            env: dict[str, str] = {}
            for _ in range(2):
                port = free_port()
                env = {
                    **os.environ,
                    "DATABASE_URL": server.set(database=database).render_as_string(
                        hide_password=False),
                    "SECRET_KEY": "observed-stack-secret-key-0123456789abcdef",
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{nginx_port}",
                    # One issuer for both, as behind one public origin.
                    "JWT_ISSUER": f"http://127.0.0.1:{nginx_port}",
                    "RATELIMIT_STORAGE_URI": redis.url,
                    "PROXY_FIX_HOPS": "1",
                    "SMS_BACKEND": "file",
                    "EMAIL_BACKEND": "file",
                    "OUTBOX_DIR": str(tmp_path / "outbox"),
                    "FLASK_APP": "authserver",
                    "PWNED_PASSWORDS_URL": "",
                    "WEBHOOK_URL": f"http://127.0.0.1:{receiver_port}/hooks",
                    "WEBHOOK_SECRET": SECRET,
                    # The admin here reads the audit trail with a password alone; the second
                    # factor admins need by default is tests/e2e/test_mfa_http.py's.
                    "MFA_REQUIRED_ROLES": "",
                }
                env.pop("WEB_CONCURRENCY", None)
                env.pop("PROMETHEUS_MULTIPROC_DIR", None)
                env.pop("LOG_FORMAT", None)
                replica_env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
                replicas.append(start_gunicorn(replica_env, tmp_path, workers=2, threads=4,
                                               config="gunicorn.conf.py"))
            conf_dir = tmp_path / "nginx"
            conf_dir.mkdir()
            nginx, url, _log = _start_nginx(
                conf_dir, [int(r.url.rsplit(":", 1)[1]) for r in replicas], nginx_port)
            processes.append(nginx)
            worker = subprocess.Popen(
                [str(BIN / "flask"), "--app", "authserver", "webhooks", "run",
                 "--interval", "0.5"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT)
            processes.append(worker)
            yield {"url": url, "replicas": replicas, "env": env,
                   "receiver_port": receiver_port, "outbox": str(tmp_path / "outbox")}
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        for replica in replicas:
            replica.stop()
        _mysql(server, f"DROP DATABASE IF EXISTS `{database}`")


def _signins(replica: LiveServer) -> dict[tuple[str, str], float]:
    text = requests.get(replica.url + "/metrics", timeout=10).text
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "authserver_signins":
            for sample in family.samples:
                if sample.name == "authserver_signins_total":
                    key = (sample.labels["method"], sample.labels["outcome"])
                    found[key] = found.get(key, 0.0) + sample.value
    return found


def test_sign_ins_show_in_metrics_audit_webhooks_and_logs(observed):
    url, env = observed["url"], observed["env"]
    api = url + "/api/v1"
    subprocess.run([str(BIN / "flask"), "--app", "authserver", "users", "create",
                    "root@example.com", "--role", "admin", "--password-stdin"], cwd=ROOT,
                   env=env, input=PASSWORD.encode(), check=True, capture_output=True,
                   timeout=60)
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"

    # The receiver is down: every sign-in below happens while its webhooks cannot arrive.
    signed_up = requests.post(api + "/signup", json={"email": email, "password": PASSWORD},
                              timeout=10)
    assert signed_up.status_code == 201, signed_up.text
    request_id = "observed-" + uuid.uuid4().hex
    by_password = requests.post(api + "/signin", json={"email": email, "password": PASSWORD},
                                headers={"X-Request-ID": request_id}, timeout=10)
    assert by_password.status_code == 200, by_password.text
    assert by_password.headers["X-Request-ID"] == request_id
    assert requests.post(api + "/otp/request", json={"phone": PHONE},
                         timeout=10).status_code == 202
    by_sms = requests.post(api + "/otp/verify", timeout=10, json={
        "phone": PHONE, "code": last_code(observed["outbox"], PHONE)})
    assert by_sms.status_code == 200, by_sms.text
    assert requests.post(api + "/magic-link/request", json={"email": email},
                         timeout=10).status_code == 202
    token, _code = last_mail(observed["outbox"], email)
    by_link = requests.post(api + "/magic-link/verify", json={"token": token}, timeout=10)
    assert by_link.status_code == 200, by_link.text
    time.sleep(RECEIVER_DOWN)

    with WebhookReceiver(SECRET).start(port=observed["receiver_port"]) as receiver:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            arrived = [event.body["type"] for event in receiver.events]
            # The admin (CLI), Ada (sign-up) and the phone's account (its first SMS sign-in)
            # were created; the sign-up's own sign-in, then the three; and the mailed link,
            # Ada's first proof of her address, ended the sessions her unproven password had.
            if (arrived.count("user.created") >= 3 and arrived.count("user.signed_in") >= 4
                    and arrived.count("session.revoked") >= 1):
                break
            time.sleep(0.5)
        ids = receiver.ids()
        assert len(ids) == len(set(ids)), ids  # each event once
        assert not receiver.rejected  # every signature checked out
        types = [event.body["type"] for event in receiver.events]
        assert types.count("user.created") == 3, types
        users = {e.body["data"]["id"] for e in receiver.events
                 if e.body["type"] == "user.signed_in"}
        assert {by_password.json()["user"]["id"], by_sms.json()["user"]["id"]} <= users
        assert types.count("user.signed_in") >= 4, types

    # Each replica's /metrics: together they saw a success of each kind.
    totals: dict[tuple[str, str], float] = {}
    for replica in observed["replicas"]:
        for key, value in _signins(replica).items():
            totals[key] = totals.get(key, 0.0) + value
    for method in ("password", "sms", "email_link"):
        assert totals.get((method, "success"), 0) >= 1, totals

    # The audit trail, read through the proxy by an admin.
    admin = requests.post(api + "/signin", timeout=10,
                          json={"email": "root@example.com", "password": PASSWORD}).json()
    audit = requests.get(api + "/admin/audit", params={"type": "signin.succeeded"},
                         headers={"Authorization": "Bearer " + admin["access_token"]},
                         timeout=10)
    assert audit.status_code == 200, audit.text
    methods = {event["method"] for event in audit.json()["events"]}
    assert {"password", "sms", "email_link"} <= methods, methods

    # Logs: JSON lines; the line of the password sign-in carries the id the answer echoed.
    lines = [json.loads(line) for replica in observed["replicas"]
             for line in replica.log().splitlines() if line.startswith("{")]
    assert lines and all("level" in line and "time" in line for line in lines)
    assert any(line.get("request_id") == request_id for line in lines)
    everything = "\n".join(replica.log() for replica in observed["replicas"])
    assert PASSWORD not in everything and token not in everything
