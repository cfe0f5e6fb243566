"""Faults over real HTTP against gunicorn (issue 10, items 1 and 4): a Redis limit store that
is stopped or hung, a MariaDB that is killed or hung.

Every fault is injected into a PRIVATE server (tests/fakes/private_servers.py) started here;
the shared MariaDB (3306) and Redis (6379) are never signalled. The servers here run one
gunicorn worker (4 threads), so "the keys this process loaded" is one process's memory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.e2e.conftest import LiveServer, free_port, start_gunicorn
from tests.fakes.private_servers import (
    MARIADB_AVAILABLE,
    REDIS_AVAILABLE,
    PrivateMariaDB,
    PrivateRedis,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """live_server's shape with a single worker: start(DATABASE_URL=…, …) -> LiveServer."""
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        port = free_port()
        env = {**os.environ, "SECRET_KEY": "live-server-secret-key-0123456789abcdef",
               "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "SMS_BACKEND": "file",
               "EMAIL_BACKEND": "file", "OUTBOX_DIR": str(tmp_path / "outbox"),
               "FLASK_APP": "authserver", "PWNED_PASSWORDS_URL": ""}
        env.update({key: str(value) for key, value in overrides.items()})
        server = start_gunicorn(env, tmp_path, workers=1, ready="/healthz")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def timed(call: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def sign_up(base: str, email: str = "ada@example.com") -> dict[str, Any]:
    response = requests.post(base + "/api/v1/signup", json={"email": email, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 201, response.text
    return dict(response.json())


def sign_in(base: str, password: str = PASSWORD, email: str = "ada@example.com",
            timeout: float = 30) -> requests.Response:
    return requests.post(base + "/api/v1/signin", json={"email": email, "password": password},
                         timeout=timeout)


# -- Redis ------------------------------------------------------------------------------------
@pytest.mark.skipif(not REDIS_AVAILABLE, reason="redis-server is not installed")
def test_redis_stopped_hung_and_back_over_http(live_server, tmp_path):
    with PrivateRedis() as store:
        server = live_server(RATELIMIT_STORAGE_URI=store.url,
                             SIGNIN_LIMIT_PER_ACCOUNT="3/minute")
        base = server.url
        sign_up(base)
        assert sign_in(base).status_code == 200
        probe = redis.Redis.from_url(store.url, socket_timeout=2)
        assert probe.keys("LIMITS*")  # counted in Redis: one budget for both workers

        store.stop()
        answers = [sign_in(base).status_code for _ in range(2)]
        assert answers == [200, 200]  # was 500 with a 66-line traceback each
        ready = requests.get(base + "/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json() == {"status": "degraded", "degraded": ["rate_limit_store"]}
        # Limits still apply, per process: 3/minute per account in each of the 2 workers.
        wrong = [sign_in(base, password="wrong password 1234").status_code for _ in range(8)]
        # Whichever worker each try reaches, no more than 2 x 3 get through.
        assert set(wrong) <= {401, 429} and wrong.count(401) <= 6, wrong

        store.start()  # same port, empty
        store.pause()  # hung: accepts connections, never answers
        try:
            # A new address each time: the account limit here is 3/minute, and in memory the
            # tries may all reach one worker.
            for n in range(4):
                response, took = timed(lambda: sign_in(base, email=f"bob{n}@example.com"))
                assert response.status_code == 401
                assert took < 1.2, took  # was 5 s per request
            ready, took = timed(lambda: requests.get(base + "/readyz", timeout=5))
            assert ready.json()["status"] == "degraded" and took < 2
        finally:
            store.resume()

        # Back: within the retry interval (5 s) every worker counts in Redis again.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if requests.get(base + "/readyz", timeout=5).json()["status"] == "ready":
                break
            time.sleep(0.5)
        sign_in(base, email="cy@example.com")
        assert requests.get(base + "/readyz", timeout=5).json() == {"status": "ready",
                                                                     "degraded": []}
        log = server.log()
        assert "Traceback" not in log
        assert 0 < log.count("storage unreachable") <= 2 * 2  # once per outage per worker


# -- MariaDB ----------------------------------------------------------------------------------
@pytest.fixture
def private_mariadb() -> Iterator[PrivateMariaDB]:
    if not MARIADB_AVAILABLE:
        pytest.skip("mariadbd is not installed")
    with PrivateMariaDB() as server:
        yield server


def test_jwks_and_known_keys_survive_a_killed_database(one_worker, private_mariadb):
    server = one_worker(DATABASE_URL=private_mariadb.create_database("faults"))
    base = server.url
    sign_up(base)
    keys = requests.get(base + "/.well-known/jwks.json", timeout=5)
    assert keys.status_code == 200 and keys.json()["keys"]

    private_mariadb.kill()
    time.sleep(1.1)  # past the reload interval: the next JWKS request tries the database
    during, took = timed(lambda: requests.get(base + "/.well-known/jwks.json", timeout=10))
    assert during.status_code == 200, during.text  # was 503 while the keys were in memory
    assert during.json() == keys.json() and took < 3
    ready = requests.get(base + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["code"] == "service_unavailable"
    down = sign_in(base)
    assert down.status_code == 503 and down.json()["code"] == "service_unavailable"
    assert server.log().count("cannot reload signing keys") == 1  # logged once

    private_mariadb.start()
    deadline = time.monotonic() + 20
    while requests.get(base + "/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.3)
    assert sign_in(base).status_code == 200


def test_a_hung_database_answers_fast(one_worker, private_mariadb):
    server = one_worker(DATABASE_URL=private_mariadb.create_database("faults"))
    base = server.url
    sign_up(base)
    keys = requests.get(base + "/.well-known/jwks.json", timeout=5).json()

    private_mariadb.pause()  # SIGSTOP: connections are accepted, nothing answers
    try:
        ready, took = timed(lambda: requests.get(base + "/readyz", timeout=30))
        assert ready.status_code == 503 and took < 2.0, took  # was 20 s

        # An API request in flight on a hung database does not starve /healthz.
        in_flight: list[tuple[requests.Response, float]] = []
        worker = threading.Thread(target=lambda: in_flight.append(
            timed(lambda: sign_in(base, timeout=30))))
        worker.start()
        time.sleep(0.2)
        health, took = timed(lambda: requests.get(base + "/healthz", timeout=5))
        assert health.status_code == 200 and took < 1.0, took
        worker.join(timeout=30)
        answer, took = in_flight[0]
        assert answer.status_code == 503 and answer.json()["code"] == "service_unavailable"
        # A pooled connection's ping (DATABASE_READ_TIMEOUT, 2.5 s), then one reconnect whose
        # handshake waits as long: about 5 s.
        assert took < 6.0, took

        jwks, took = timed(lambda: requests.get(base + "/.well-known/jwks.json", timeout=30))
        assert jwks.status_code == 200 and jwks.json() == keys
        again, took = timed(lambda: requests.get(base + "/.well-known/jwks.json", timeout=30))
        assert again.status_code == 200 and took < 1.0, took  # no retry for 10 s
    finally:
        private_mariadb.resume()
    deadline = time.monotonic() + 20
    while requests.get(base + "/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.3)
    assert sign_in(base).status_code == 200
