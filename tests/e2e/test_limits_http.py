"""The red-team reproductions over real HTTP: gunicorn (2 workers) + MySQL.

- a stranger's wrong passwords don't stop the owner's browser (device cookie; Redis limits);
- consecutive failures lock password sign-in whichever worker answers (memory:// limits);
- the global SMS cap (bill stop) holds across the two workers' separate memory:// counters.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.flows.sms_helpers import sms_messages

PASSWORD = "correct horse battery staple"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _sign_in(session: requests.Session | None, base: str, password: str = PASSWORD,
             email: str = "ada@example.com", **kwargs) -> requests.Response:
    poster = session or requests
    return poster.post(base + "/signin", json={"email": email, "password": password},
                       timeout=10, **kwargs)


def test_strangers_failures_do_not_lock_out_the_owners_browser_over_http(live_server):
    # Redis: both workers count one budget, so the stranger is held whichever one answers.
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    # Redis outlives the test: the sign-up budget of 127.0.0.1 must not run out across runs.
    server = live_server(RATELIMIT_STORAGE_URI=REDIS_URL, SIGNIN_LIMIT_PER_IP="200/minute",
                         SIGNUP_LIMIT_PER_IP="100000/hour")
    base = server.url + "/api/v1"
    email = f"ada-{uuid.uuid4().hex[:12]}@example.com"  # Redis outlives this test
    assert requests.post(base + "/signup", json={"email": email, "password": PASSWORD},
                         timeout=10).status_code == 201
    browser = requests.Session()
    assert _sign_in(browser, base, email=email).status_code == 200
    assert browser.cookies.get("authserver_device")

    answers = [_sign_in(None, base, "wrong-password", email).status_code for _ in range(12)]
    assert answers[-3:] == [429] * 3 and set(answers) == {401, 429}
    for _ in range(4):  # whichever worker answers
        assert _sign_in(browser, base, email=email).status_code == 200
    assert _sign_in(None, base, email=email).status_code == 429


def test_consecutive_failures_lock_password_sign_in_over_http(live_server):
    server = live_server(SIGNIN_MAX_CONSECUTIVE_FAILURES=6, SIGNIN_LIMIT_PER_ACCOUNT="1000/minute")
    base = server.url + "/api/v1"
    assert requests.post(base + "/signup", json={"email": "ada@example.com",
                                                 "password": PASSWORD},
                         timeout=10).status_code == 201
    with ThreadPoolExecutor(6) as pool:  # in parallel, across both workers
        answers = list(pool.map(lambda _: _sign_in(None, base, "wrong-password").status_code,
                                range(12)))
    assert sorted(answers) == [401] * 6 + [403] * 6
    locked = _sign_in(None, base)
    assert locked.status_code == 403 and locked.json()["code"] == "password_signin_locked"


def test_global_sms_cap_holds_across_workers_over_http(live_server):
    server = live_server(OTP_LIMIT_GLOBAL_HOUR="3/hour")
    base = server.url + "/api/v1"
    phones = [f"+1415555{n:04d}" for n in range(101, 111)]
    answers = [requests.post(base + "/otp/request", json={"phone": phone},
                             timeout=10).status_code for phone in phones]
    assert answers == [202] * 3 + [429] * 7
    assert len(sms_messages(server.env["OUTBOX_DIR"])) == 3
