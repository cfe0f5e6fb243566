"""/metrics and the JSON logs over real gunicorn (two workers, gunicorn.conf.py, MySQL).

- One scrape shows the traffic every worker served (prometheus-client's multiprocess mode),
  and values a previous server left in the folder are wiped as the master starts.
- Every line gunicorn and the app write is a JSON object; the request id a client sent (when
  sane) is the one echoed and the one logged; no secret or address reaches the log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PASSWORD
from tests.e2e.conftest import ROOT, LiveServer

Samples = dict[tuple[str, frozenset[Any]], float]


def _scrape(server: LiveServer, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(server.url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text[:300]
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def _healthz_count(samples: Samples) -> float:
    return samples.get(("authserver_http_request_duration_seconds_count", frozenset(
        {"route": "/healthz", "method": "GET", "status": "2xx"}.items())), 0.0)


def _leave_stale_values(directory: Path) -> None:
    """What a previous master's worker would have left: 1000 password sign-ins."""
    code = ("from authserver import metrics; "
            "metrics.SIGNINS.labels('password', 'success').inc(1000)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60,
                   env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert list(directory.glob("counter_*.db"))


def test_one_scrape_adds_up_every_worker_and_the_folder_starts_empty(live_server, tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    _leave_stale_values(directory)
    server = live_server(PROMETHEUS_MULTIPROC_DIR=directory,
                         METRICS_TOKEN="e2e-metrics-token-0123456789")
    assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
    before = _scrape(server, "e2e-metrics-token-0123456789")
    assert before.get(("authserver_signins_total", frozenset(
        {"method": "password", "outcome": "success"}.items())), 0.0) == 0  # wiped at start

    sent = 120
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(
            lambda _: requests.get(server.url + "/healthz", timeout=10,
                                   headers={"Connection": "close"}).status_code, range(sent)))
    assert statuses == [200] * sent
    pids = {path.stem.rsplit("_", 1)[1] for path in directory.glob("histogram_*.db")}
    assert len(pids) >= 2, pids  # both workers served some of it
    after = _scrape(server, "e2e-metrics-token-0123456789")
    assert _healthz_count(after) - _healthz_count(before) == sent
    assert ("authserver_active_sessions", frozenset()) in after


def _log_lines(server: LiveServer, needle: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every line of the server's output, parsed, once `needle` is in it (gunicorn writes the
    access log after the answer). Every line must be JSON."""
    deadline = time.monotonic() + timeout
    while needle not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    entries = []
    for line in server.log().splitlines():
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
    return entries


def test_every_log_line_is_json_with_the_request_id_echoed_and_kept(live_server):
    server = live_server()
    sane = requests.get(server.url + "/healthz", headers={"X-Request-ID": "e2e-req.1"},
                        timeout=10)
    assert sane.headers["X-Request-ID"] == "e2e-req.1"
    insane = requests.get(server.url + "/healthz", headers={"X-Request-ID": "not sane!"},
                          timeout=10)
    replaced = insane.headers["X-Request-ID"]
    assert replaced != "not sane!" and len(replaced) == 32
    missing = requests.get(server.url + "/api/v1/nope", timeout=10)
    assert missing.status_code == 404
    generated = missing.headers["X-Request-ID"]

    signed_up = requests.post(server.url + "/api/v1/signup", timeout=10,
                              headers={"X-Request-ID": "e2e-signup"},
                              json={"email": "ada@example.com", "password": PASSWORD})
    assert signed_up.status_code == 201, signed_up.text
    body = signed_up.json()
    me = requests.get(server.url + "/api/v1/me", timeout=10,
                      headers={"Authorization": f"Bearer {body['access_token']}",
                               "X-Request-ID": "e2e-me"})
    assert me.status_code == 200
    requests.get(server.url + f"/auth/magic?token={body['refresh_token']}", timeout=10)

    entries = _log_lines(server, '"request_id": "e2e-me"')
    assert {"time", "level", "logger", "message"} <= set(entries[0])
    access = {entry.get("request_id"): entry for entry in entries
              if entry["logger"] == "gunicorn.access"}
    assert access["e2e-req.1"]["route"] == "/healthz" and access["e2e-req.1"]["status"] == 200
    assert access["e2e-req.1"]["message"] == "GET /healthz 200"
    assert isinstance(access["e2e-req.1"]["duration_ms"], float)
    assert replaced in access and "not sane!" not in server.log()
    assert access[generated]["route"] == "unmatched" and access[generated]["status"] == 404
    assert access["e2e-me"]["user_id"] == me.json()["id"]  # the access token's
    assert access["e2e-signup"]["user_id"] == me.json()["id"]  # the sign-in's event
    assert [e for e in entries if e.get("request_id") == "e2e-signup"
            and e["logger"].startswith("authserver.")]  # the app's lines carry it too
    assert access["e2e-me"]["route"] == "/api/v1/me"
    log = server.log()
    for secret in (PASSWORD, "ada@example.com", body["access_token"], body["refresh_token"],
                   "token="):
        assert secret not in log, secret
