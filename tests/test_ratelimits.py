"""Limits shared through Redis: two app instances (two workers) count against one budget."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from authserver import create_app, ratelimits
from authserver.errors import Problem
from tests.conftest import base_config

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url():
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis not reachable at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    return REDIS_URL


WORKER = """
import sys
from authserver import create_app, ratelimits
from authserver.errors import Problem
app = create_app({"INSTANCE_PATH": sys.argv[1], "DATABASE_URL": "sqlite://",
                  "SECRET_KEY": "x" * 32, "RATELIMIT_STORAGE_URI": sys.argv[2],
                  "SIGNIN_LIMIT_PER_ACCOUNT": "3/minute"})
with app.test_request_context():
    try:
        ratelimits.hit(ratelimits.SIGNIN_ACCOUNT, sys.argv[3])
    except Problem as exc:
        print("limited", exc.headers["Retry-After"])
    else:
        print("ok")
"""


def _worker(tmp_path, storage: str, key: str) -> str:
    """One hit from a separate process, as another gunicorn worker would make it."""
    result = subprocess.run([sys.executable, "-c", WORKER, str(tmp_path / "w"), storage, key],
                            capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    return result.stdout.strip()


def test_separate_processes_share_one_budget_through_redis(tmp_path, redis_url):
    key = f"test-{uuid.uuid4().hex}"
    assert [_worker(tmp_path, redis_url, key) for _ in range(3)] == ["ok"] * 3
    verdict, retry_after = _worker(tmp_path, redis_url, key).split()
    assert verdict == "limited" and 1 <= int(retry_after) <= 60


def test_memory_storage_is_per_process(tmp_path):
    """Why production with several workers needs Redis: memory budgets are not shared."""
    key = f"test-{uuid.uuid4().hex}"
    assert [_worker(tmp_path, "memory://", key) for _ in range(4)] == ["ok"] * 4


def test_check_does_not_count_and_count_does(tmp_path):
    app = create_app({**base_config(tmp_path, "sqlite:///" + str(tmp_path / "m.db")),
                      "SIGNIN_LIMIT_PER_ACCOUNT": "2/minute"})
    probe = ratelimits.SIGNIN_ACCOUNT
    with app.test_request_context():
        for _ in range(5):
            ratelimits.check(probe, "k")  # looking costs nothing
        ratelimits.count(probe, "k")
        ratelimits.count(probe, "k")
        with pytest.raises(Problem):
            ratelimits.check(probe, "k")


# -- moving windows: no double burst at a window's edge --------------------------------------
def test_limits_use_moving_windows():
    from limits.strategies import MovingWindowRateLimiter

    from authserver.extensions import limiter

    assert isinstance(limiter.limiter, MovingWindowRateLimiter)


@pytest.mark.parametrize("storage", ["memory", "redis"])
def test_a_burst_at_a_window_edge_cannot_get_twice_the_limit(tmp_path, request, storage):
    """5 per 2 seconds: 1 hit, 4 more late in the window, then a burst just after the edge.

    A fixed window would start afresh at the edge and let the whole burst of 5 through (9
    in ~0.7 s); a moving window lets through only the 1 whose slot has aged out.
    """
    uri = "memory://" if storage == "memory" else request.getfixturevalue("redis_url")
    app = create_app({**base_config(tmp_path, "sqlite:///" + str(tmp_path / "m.db")),
                      "RATELIMIT_STORAGE_URI": uri, "SIGNIN_LIMIT_PER_ACCOUNT": "5/2 seconds"})
    key = f"edge-{uuid.uuid4().hex}"

    def allowed(n: int) -> int:
        passed = 0
        for _ in range(n):
            try:
                ratelimits.hit(ratelimits.SIGNIN_ACCOUNT, key)
                passed += 1
            except Problem:
                pass
        return passed

    with app.test_request_context():
        started = time.monotonic()
        assert allowed(1) == 1
        time.sleep(max(0.0, started + 1.4 - time.monotonic()))
        assert allowed(4) == 4
        time.sleep(max(0.0, started + 2.1 - time.monotonic()))
        burst = allowed(5)
        assert time.monotonic() - started < 3.3, "too slow to say anything about the edge"
        assert burst == 1


# -- IPv6: a client's whole /64 is one budget ------------------------------------------------
@pytest.mark.parametrize(("address", "key"), [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:abcd:12::1", "2001:db8:abcd:12::/64"),
    ("2001:db8:abcd:12:ffff:ffff:ffff:ffff", "2001:db8:abcd:12::/64"),
    ("2001:DB8:ABCD:12:1:2:3:4", "2001:db8:abcd:12::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("unknown", "unknown"),
])
def test_ip_key_counts_ipv6_by_64(address, key):
    from authserver.extensions import ip_key

    assert ip_key(address) == key


def test_every_per_ip_limit_is_marked_per_ip():
    per_ip = {limit.name for limit in ratelimits.LIMITS if limit.per_ip}
    assert per_ip == {"signin-ip", "signup-ip", "otp-ip", "otp-verify-ip", "magic-link-ip",
                      "reset-ip", "link-verify", "token", "verify-email-ip", "change-email-ip",
                      "signup-attempt-ip"}


def _ipv6_in(prefix: str) -> str:
    """An address in `prefix`::/64 with random last 64 bits, as a rotating client picks."""
    return prefix + ":" + ":".join(f"{random.getrandbits(16):x}" for _ in range(4))


@pytest.mark.parametrize("config_overrides", [{"TOKEN_LIMIT_PER_IP": "3/minute"}])
def test_ipv6_client_rotating_its_last_64_bits_shares_one_route_budget(client):
    """A route limit (Flask-Limiter, /api/v1/token/refresh) keys the caller by its /64."""
    def refresh(address: str) -> int:
        return client.post("/api/v1/token/refresh", json={"refresh_token": "x" * 43},
                           environ_base={"REMOTE_ADDR": address}).status_code

    assert [refresh(_ipv6_in("2001:db8:abcd:12")) for _ in range(3)] == [401] * 3
    assert refresh(_ipv6_in("2001:db8:abcd:12")) == 429
    assert refresh(_ipv6_in("2001:db8:abcd:13")) == 401  # the next /64 is someone else


@pytest.mark.parametrize("config_overrides", [{"OTP_LIMIT_PER_IP_HOUR": "2/hour"}])
def test_ipv6_client_rotating_its_last_64_bits_shares_one_flow_budget(client):
    """A flow's per-IP limit (SMS codes per IP) keys the caller by its /64 too."""
    def ask(phone: str, address: str) -> int:
        return client.post("/api/v1/otp/request", json={"phone": phone},
                           environ_base={"REMOTE_ADDR": address}).status_code

    assert ask("+14155550101", _ipv6_in("2001:db8:abcd:12")) == 202
    assert ask("+14155550102", _ipv6_in("2001:db8:abcd:12")) == 202
    assert ask("+14155550103", _ipv6_in("2001:db8:abcd:12")) == 429
    assert ask("+14155550103", _ipv6_in("2001:db8:abcd:13")) == 202


# -- shared limits: the SMS bill stop holds across processes on memory:// --------------------
SMS_WORKER = """
import sys
from authserver import create_app
instance, database_url, outbox, first_ip, *phones = sys.argv[1:]
app = create_app({"INSTANCE_PATH": instance, "DATABASE_URL": database_url,
                  "SECRET_KEY": "x" * 32, "RATELIMIT_STORAGE_URI": "memory://",
                  "SMS_BACKEND": "file", "OUTBOX_DIR": outbox,
                  "OTP_LIMIT_GLOBAL_HOUR": "3/hour"})
client = app.test_client()
for n, phone in enumerate(phones):
    answer = client.post("/api/v1/otp/request", json={"phone": phone},
                         environ_base={"REMOTE_ADDR": f"198.51.100.{int(first_ip) + n}"})
    print(answer.status_code)
"""


def _sms_worker(tmp_path, database_url: str, first_ip: int, *phones: str) -> list[int]:
    """A separate process with its own memory:// limits, as another gunicorn worker is."""
    result = subprocess.run(
        [sys.executable, "-c", SMS_WORKER, str(tmp_path / f"w{first_ip}"), database_url,
         str(tmp_path / "outbox"), str(first_ip), *phones],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return [int(line) for line in result.stdout.split()]


def test_global_sms_cap_holds_across_processes_on_memory_storage(app, tmp_path, database_url):
    from tests.flows.sms_helpers import sms_messages

    assert _sms_worker(tmp_path, database_url, 1, "+14155550101", "+33612345678") == [202, 202]
    # Another process: its memory:// counters are empty, the database's count is not.
    assert _sms_worker(tmp_path, database_url, 10, "+491701234567", "+447400123456") == [
        202, 429]
    assert len(sms_messages(tmp_path / "outbox")) == 3


@pytest.mark.parametrize("config_overrides", [{"OTP_LIMIT_GLOBAL_HOUR": "2/hour"}])
def test_requests_that_send_nothing_cost_the_global_cap_nothing(app, client):
    """The bill stop's unit is taken before sending and given back when nothing went out, so
    hammering one number (refused by its resend cooldown) can't use up everyone's budget."""
    def ask(phone: str, ip: str) -> int:
        return client.post("/api/v1/otp/request", json={"phone": phone},
                           environ_base={"REMOTE_ADDR": ip}).status_code

    assert ask("+14155550101", "198.51.100.1") == 202
    assert [ask("+14155550101", "198.51.100.1") for _ in range(5)] == [429] * 5  # cooldown
    assert ask("+33612345678", "198.51.100.2") == 202
    assert ask("+491701234567", "198.51.100.3") == 429  # the cap: two texts went out


def test_an_empty_rate_in_the_environment_turns_that_limit_off(tmp_path, monkeypatch):
    """docs/api.md: an empty rate turns that limit off, from the environment too (it does
    not fall back to the default)."""
    monkeypatch.setenv("SIGNUP_LIMIT_PER_IP", "")
    monkeypatch.setenv("TOKEN_LIMIT_PER_IP", "")
    app = create_app(base_config(tmp_path, "sqlite:///" + str(tmp_path / "e.db")))
    assert app.config["SIGNUP_LIMIT_PER_IP"] == "" and app.config["TOKEN_LIMIT_PER_IP"] == ""
    with app.app_context():
        from authserver.extensions import db

        db.create_all()
    client = app.test_client()
    answers = {client.post("/api/v1/token/refresh",
                           json={"refresh_token": "x" * 43}).status_code for _ in range(150)}
    assert answers == {401}  # never 429: the route limit is off
    with app.test_request_context():
        for _ in range(50):
            ratelimits.hit(ratelimits.SIGNUP_IP, "203.0.113.9")  # never raises


def test_flask_limiters_hooks_run_only_for_views_with_a_route_limit(client, signup):
    """The token check carries no route limit: Flask-Limiter's after-request and teardown
    hooks skip it (no limiter context is made), while a limited view still gets both."""
    from flask.globals import request_ctx

    token = signup()["access_token"]
    with client:
        response = client.get("/api/v1/isAuthenticated",
                              headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert not hasattr(request_ctx._get_current_object(), "_limiter_request_context")
    with client:
        response = client.post("/api/v1/token/exchange", json={"code": "x" * 43})
        assert response.status_code == 401
        assert hasattr(request_ctx._get_current_object(), "_limiter_request_context")
