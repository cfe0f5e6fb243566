"""Limits shared through Redis: two app instances (two workers) count against one budget."""

from __future__ import annotations

import os
import subprocess
import sys
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
