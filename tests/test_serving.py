"""authserver/serving.py: what gunicorn.conf.py configures, checked without a server (the
e2e tests in tests/e2e/test_gunicorn_conf.py run it for real)."""

from __future__ import annotations

import json
import os
import runpy
from pathlib import Path

import pytest

from authserver import serving

ROOT = Path(__file__).resolve().parents[1]


def test_the_access_log_format_has_no_query_string_or_referer():
    fmt = serving.ACCESS_LOG_FORMAT
    assert "%(U)s" in fmt  # the path
    for atom in ("%(r)s", "%(q)s", "%(f)s", "{raw_uri}"):
        assert atom not in fmt


def test_gunicorn_conf_uses_the_serving_settings(monkeypatch):
    # gunicorn.conf.py sets LOG_FORMAT and PROMETHEUS_MULTIPROC_DIR for the workers: here in
    # a copy of the environment, or every later test (and server) of this process would
    # inherit them.
    environ = {k: v for k, v in os.environ.items()
               if k not in {"LOG_FORMAT", "PROMETHEUS_MULTIPROC_DIR"}}
    monkeypatch.setattr(os, "environ", environ)
    conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    Path(environ["PROMETHEUS_MULTIPROC_DIR"]).rmdir()
    assert environ["LOG_FORMAT"] == "json" and conf["logconfig_dict"]
    assert conf["on_starting"] is serving.clean_metrics_directory
    assert conf["child_exit"] is serving.worker_exited
    assert conf["on_exit"] is serving.remove_own_metrics_directory
    assert conf["access_log_format"] == serving.ACCESS_LOG_FORMAT
    assert conf["accesslog"] == "-"
    assert conf["limit_request_line"] == serving.LIMIT_REQUEST_LINE
    assert conf["limit_request_fields"] == serving.LIMIT_REQUEST_FIELDS
    assert conf["limit_request_field_size"] == serving.LIMIT_REQUEST_FIELD_SIZE
    assert conf["when_ready"] is serving.warn_if_limits_per_worker


@pytest.mark.parametrize(("workers", "environ", "warns"), [
    (4, {}, True),  # the default storage is memory://
    (2, {"RATELIMIT_STORAGE_URI": "memory://"}, True),
    (2, {"RATELIMIT_STORAGE_URI": ""}, True),  # empty means the default
    (1, {}, False),
    (4, {"RATELIMIT_STORAGE_URI": "redis://redis:6379/0"}, False),
    (4, {"RATELIMIT_ENABLED": "false"}, False),
    (4, {"RATELIMIT_ENABLED": "not-a-bool"}, False),  # the app itself refuses to start
])
def test_shared_limits_warning(workers, environ, warns):
    message = serving.shared_limits_warning(workers, environ)
    assert (message is not None) == warns
    if warns:
        assert f"{workers} workers" in message and "redis://" in message


def test_gunicorns_own_refusals_are_problems_that_echo_nothing():
    raw = serving.problem_bytes(431, "Request Header Fields Too Large")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Content-Type: application/problem+json" in head
    assert f"Content-Length: {len(body)}".encode() in head
    document = json.loads(body)
    assert document["status"] == 431 and document["code"] == "invalid_request"
    assert json.loads(serving.problem_bytes(500, "Internal Server Error").partition(
        b"\r\n\r\n")[2])["code"] == "internal_error"


# -- logs and metrics under gunicorn -------------------------------------------------------
def test_log_format_is_json_under_gunicorn_unless_chosen():
    environ: dict[str, str] = {}
    config = serving.logging_config(environ)
    assert environ["LOG_FORMAT"] == "json" and config is not None
    assert config["formatters"]["json"]["()"] == "authserver.logs.JsonFormatter"
    chosen = {"LOG_FORMAT": "text"}
    assert serving.logging_config(chosen) is None and chosen["LOG_FORMAT"] == "text"


def test_the_metrics_folder_is_the_given_one_or_a_fresh_one(tmp_path, monkeypatch):
    given = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    assert serving.metrics_directory(given) == str(tmp_path)
    fresh: dict[str, str] = {}
    made = serving.metrics_directory(fresh)
    try:
        assert Path(made).is_dir() and made != str(tmp_path)
        assert serving.metrics_directory(fresh) == made  # a config reload keeps it
    finally:
        Path(made).rmdir()


def test_the_master_empties_the_folder_at_start_and_removes_only_its_own(tmp_path,
                                                                         monkeypatch):
    (tmp_path / "counter_123.db").write_bytes(b"stale")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("AUTHSERVER_OWN_METRICS_DIR", raising=False)
    serving.clean_metrics_directory()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    serving.remove_own_metrics_directory()  # given by the operator: kept
    assert tmp_path.is_dir()
    own = tmp_path / "own"
    own.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(own))
    monkeypatch.setenv("AUTHSERVER_OWN_METRICS_DIR", str(own))
    serving.remove_own_metrics_directory()
    assert not own.exists()


def test_a_usr2_upgrade_keeps_the_folder_of_the_running_workers(tmp_path, monkeypatch):
    from types import SimpleNamespace

    (tmp_path / "counter_123.db").write_bytes(b"running")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("AUTHSERVER_OWN_METRICS_DIR", str(tmp_path))
    serving.clean_metrics_directory(SimpleNamespace(master_pid=4242))  # the new master
    serving.remove_own_metrics_directory(SimpleNamespace(reexec_pid=4243))  # the old one
    assert (tmp_path / "counter_123.db").exists()
