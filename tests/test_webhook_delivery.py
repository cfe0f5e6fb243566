"""webhook_delivery.py and `flask webhooks …`: signed, retried with back-off, each event
marked delivered once, never sent by two workers at once, nothing lost to a killed worker.

A real receiver on 127.0.0.1 (tests/fakes/webhook_receiver.py) checks every signature."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from authserver import create_app, events, webhook_delivery
from authserver.events import Event, EventType
from authserver.extensions import db
from authserver.models import WebhookOutbox
from tests.conftest import SECRET as SECRET_KEY
from tests.conftest import base_config
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
ROOT = Path(__file__).resolve().parents[1]
WORKER_TIMEOUT = 10  # the subprocess workers' WEBHOOK_TIMEOUT


@pytest.fixture
def receiver():
    with WebhookReceiver(SECRET) as running:
        yield running


@pytest.fixture
def config_overrides(receiver):
    return {"WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET, "WEBHOOK_TIMEOUT": 2}


def _emit(count: int) -> list[str]:
    """`count` user.updated events about one user, committed; their webhook ids."""
    before = {row.event_id for row in _rows()}
    user_id = f"user-{time.monotonic_ns()}"  # no row needed (data is then {"id"} alone)
    for _ in range(count):
        events.emit(Event(EventType.USER_UPDATED, user_id=user_id))
    db.session.commit()
    return [row.event_id for row in _rows() if row.event_id not in before]


def _rows() -> list[WebhookOutbox]:
    db.session.expire_all()
    rows = list(db.session.scalars(select(WebhookOutbox).order_by(WebhookOutbox.id)))
    db.session.commit()
    return rows


def test_deliver_once_sends_signed_events_and_marks_each_once(app, runner, receiver):
    ids = _emit(3)
    result = runner.invoke(args=["webhooks", "deliver", "--once"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "delivered: 3, retrying: 0, given up: 0"
    assert receiver.ids() == ids and receiver.rejected == []
    stored = {row.event_id: row for row in _rows()}
    for delivery in receiver.events:
        row = stored[delivery.id]
        assert delivery.raw.decode() == row.payload  # the stored body, byte for byte
        assert delivery.body["type"] == "user.updated"
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.signature.startswith("v1,")
        assert abs(int(delivery.timestamp) - time.time()) < 30
        assert row.delivered_at is not None and row.attempts == 1 and row.last_error is None
    first = {row.event_id: row.delivered_at for row in _rows()}

    again = runner.invoke(args=["webhooks", "deliver", "--once"])
    assert again.output.strip() == "delivered: 0, retrying: 0, given up: 0"
    assert receiver.ids() == ids
    assert {row.event_id: row.delivered_at for row in _rows()} == first  # marked once


def test_a_raw_secret_signs_too(app, tmp_path):
    raw = "a-raw-secret-of-at-least-32-characters!"
    with WebhookReceiver(raw) as receiver:
        # A second app on the same database, configured with the raw secret.
        other = create_app({**base_config(tmp_path / "raw", app.config["DATABASE_URL"]),
                            "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": raw})
        with other.app_context():
            ids = _emit(1)
            report = webhook_delivery.deliver_due()
            db.session.remove()
            db.engine.dispose()
        assert (report.delivered, receiver.ids(), receiver.rejected) == (1, ids, [])


def test_a_wrong_secret_is_refused_by_the_receiver_and_retried(app, receiver):
    receiver.secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    ids = _emit(1)
    report = webhook_delivery.deliver_due()
    assert (report.delivered, report.retrying) == (0, 1)
    assert [d.id for d in receiver.rejected] == ids and receiver.ids() == []
    assert _rows()[0].last_error == "HTTP 401"


def test_receiver_down_then_back_every_event_arrives_once(app, receiver, clock):
    ids = _emit(5)
    port = int(receiver.url.split(":")[2].split("/")[0])
    receiver.stop()  # connection refused

    report = webhook_delivery.deliver_due(batch_size=2)
    assert (report.delivered, report.retrying, report.given_up) == (0, 5, 0)
    rows = _rows()
    now = clock.now()
    for row in rows:
        assert row.attempts == 1 and row.last_error == "connection failed"
        assert row.delivered_at is None and row.failed_at is None
        wait = (row.next_attempt_at - now).total_seconds()
        assert 2.5 - 1 <= wait <= 5  # 5 s, times a jitter factor between 0.5 and 1
    assert webhook_delivery.deliver_due().retrying == 0  # not due yet: nothing sent

    receiver.start(port)  # up, but failing
    receiver.status = 500
    waits = []
    for attempt in range(2, 6):
        clock.travel(3600)
        report = webhook_delivery.deliver_due()
        assert report.retrying == 5
        rows = _rows()
        assert {row.attempts for row in rows} == {attempt}
        assert {row.last_error for row in rows} == {"HTTP 500"}
        waits.append(max((row.next_attempt_at - clock.now()).total_seconds() for row in rows))
    # Exponential: at most 5·2^(n-1) s after the n-th failure, at least half of it.
    for attempt, wait in zip(range(2, 6), waits, strict=True):
        assert 5 * 2 ** (attempt - 1) * 0.5 - 1 <= wait <= 5 * 2 ** (attempt - 1)
    assert sorted(d.id for d in receiver.refused) == sorted(ids * 4)

    receiver.status = 204
    clock.travel(3600)
    report = webhook_delivery.deliver_due(batch_size=2)
    assert report.delivered == 5
    assert sorted(receiver.ids()) == sorted(ids)  # each id once
    assert all(row.delivered_at is not None and row.attempts == 6 for row in _rows())
    clock.travel(86400)
    assert webhook_delivery.deliver_due().delivered == 0
    assert sorted(receiver.ids()) == sorted(ids)


def test_after_max_age_an_event_is_given_up(app, receiver, clock, caplog):
    receiver.status = 503
    [event_id] = _emit(1)
    deadline = _rows()[0].created_at + timedelta(seconds=86400)
    attempts = 0
    while True:
        report = webhook_delivery.deliver_due()
        attempts += 1
        [row] = _rows()
        if report.given_up:
            break
        assert report.retrying == 1 and row.next_attempt_at <= deadline
        clock.travel(max(1.0, (row.next_attempt_at - clock.now()).total_seconds()))
        assert attempts < 60
    assert row.failed_at is not None and row.next_attempt_at is None and row.delivered_at is None
    assert row.attempts == attempts and clock.now() >= deadline
    assert row.failed_at - deadline < timedelta(seconds=5)  # the last try at the deadline
    assert f"webhook {event_id} (user.updated) given up after {attempts} attempts: HTTP 503" \
        in caplog.text
    clock.travel(86400 * 3)
    receiver.status = 204
    assert webhook_delivery.deliver_due().delivered == 0 and receiver.ids() == []


def test_a_slow_receiver_times_out_and_is_retried(app, receiver, clock):
    app.extensions["authserver.settings"] = app.extensions["authserver.settings"].model_copy(
        update={"webhook_timeout": 0.3})
    receiver.delay = 1.0
    _emit(1)
    report = webhook_delivery.deliver_due()
    assert report.retrying == 1 and _rows()[0].last_error == "timeout"


def test_two_workers_at_once_never_send_one_event_twice(app, receiver, database_url):
    if not database_url.startswith("mysql"):
        pytest.skip("SKIP LOCKED claims: MySQL/MariaDB (SQLite has one writer)")
    ids = _emit(40)
    receiver.delay = 0.02
    barrier = threading.Barrier(4, timeout=30)
    reports: list[object] = []

    def work() -> None:
        with app.app_context():
            try:
                barrier.wait()
                reports.append(webhook_delivery.deliver_due(batch_size=3))
            except Exception as exc:  # shown by the assertion below
                reports.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(isinstance(r, webhook_delivery.Report) for r in reports), reports
    assert len(reports) == 4
    assert sorted(receiver.ids()) == sorted(ids)  # every one, each once
    assert sum(r.delivered for r in reports) == 40  # type: ignore[attr-defined]
    assert sum(1 for r in reports if r.delivered) >= 2  # type: ignore[attr-defined]


def test_a_claim_skips_rows_another_worker_holds_instead_of_waiting(app, receiver,
                                                                    database_url):
    if not database_url.startswith("mysql"):
        pytest.skip("SKIP LOCKED claims: MySQL/MariaDB (SQLite has one writer)")
    ids = _emit(3)
    other = db.engine.connect()
    try:
        held = other.begin()
        other.execute(select(WebhookOutbox.id).where(WebhookOutbox.event_id == ids[0])
                      .with_for_update())  # another worker, mid-claim
        started = time.monotonic()
        report = webhook_delivery.deliver_due()
        assert time.monotonic() - started < 5  # no wait for DATABASE_LOCK_WAIT_TIMEOUT (10 s)
        assert (report.delivered, receiver.ids()) == (2, ids[1:])
        held.rollback()
    finally:
        other.close()
    assert webhook_delivery.deliver_due().delivered == 1
    assert sorted(receiver.ids()) == sorted(ids)


def _worker(app, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": app.config["DATABASE_URL"], "SECRET_KEY": SECRET_KEY,
           "WEBHOOK_URL": app.config["WEBHOOK_URL"], "WEBHOOK_SECRET": SECRET,
           "WEBHOOK_TIMEOUT": str(WORKER_TIMEOUT), "PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO"}
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "authserver", "webhooks", "run",
         "--interval", "0.2", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def test_a_worker_killed_mid_batch_loses_nothing(app, receiver, clock):
    ids = _emit(6)
    receiver.delay = 1.0
    worker = _worker(app, "--batch-size", "6")
    try:
        assert receiver.arrived.wait(60), "the worker never sent anything"
        time.sleep(0.3)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    time.sleep(receiver.delay + 0.5)  # the request in flight ends at the receiver
    receiver.delay = 0
    # The receiver took the first event, but the worker died before it heard the answer.
    assert receiver.ids() == ids[:1]
    assert all(row.delivered_at is None for row in _rows())
    # The dead worker's claim holds until its lease ends: nobody sends those rows meanwhile.
    assert webhook_delivery.deliver_due().delivered == 0
    clock.travel(6 * (WORKER_TIMEOUT + 1) + webhook_delivery.LEASE_MARGIN + 1)
    report = webhook_delivery.deliver_due()
    assert report.delivered == 6
    assert sorted(set(receiver.ids())) == sorted(ids)  # nothing lost
    assert all(row.delivered_at is not None for row in _rows())
    # At least once: only the event in flight when the worker died came twice (same id).
    assert sorted(receiver.ids()) == sorted([*ids, ids[0]])


def test_three_worker_processes_share_the_outbox_sending_each_event_once(app, receiver):
    ids = _emit(24)
    receiver.delay = 0.05
    workers = [_worker(app, "--batch-size", "2") for _ in range(3)]
    try:
        deadline = time.monotonic() + 90
        while len(receiver.ids()) < len(ids) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # a repeat, if there were one, would arrive now
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [worker.communicate(timeout=30)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    assert sorted(receiver.ids()) == sorted(ids)  # every event, each once
    assert all(row.delivered_at is not None and row.attempts == 1 for row in _rows())
    senders = [output.count(" delivered") for output in outputs]
    assert sum(senders) == len(ids)


def test_run_delivers_until_sigterm_then_exits_cleanly(app, receiver):
    ids = _emit(3)
    worker = _worker(app)
    try:
        deadline = time.monotonic() + 60
        while sorted(receiver.ids()) != sorted(ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(receiver.ids()) == sorted(ids)
        more = _emit(2)
        while sorted(receiver.ids()) != sorted(ids + more) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(receiver.ids()) == sorted(ids + more)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, output
    assert "webhook worker stopped" in output
    assert SECRET not in output and "v1," not in output
    assert all(row.delivered_at is not None for row in _rows())


def test_prune_deletes_delivered_and_given_up_events_after_keep_days(app, runner, receiver,
                                                                      clock):
    delivered = _emit(2)
    assert webhook_delivery.deliver_due().delivered == 2
    receiver.status = 500
    given_up = _emit(1)
    clock.travel(86400 + 1)
    webhook_delivery.deliver_due()
    webhook_delivery.deliver_due()
    assert _rows()[-1].failed_at is not None
    pending = _emit(1)
    clock.travel(5 * 86400)  # delivered 6 days ago, given up 5 days ago
    assert "webhook_outbox: 0" in runner.invoke(args=["prune"]).output  # kept 7 days
    clock.travel(1.5 * 86400)
    assert "webhook_outbox: 2" in runner.invoke(args=["prune"]).output
    clock.travel(86400)
    assert "webhook_outbox: 1" in runner.invoke(args=["prune"]).output
    clock.travel(365 * 86400)
    assert "webhook_outbox: 0" in runner.invoke(args=["prune"]).output
    assert [row.event_id for row in _rows()] == pending
    assert not set(delivered + given_up) & {row.event_id for row in _rows()}


@pytest.mark.parametrize("config_overrides", [{}])
def test_the_commands_need_webhook_url(runner):
    result = runner.invoke(args=["webhooks", "deliver", "--once"])
    assert result.exit_code != 0 and "WEBHOOK_URL is not set" in result.output


def test_signature_matches_the_standard_webhooks_example():
    """The example of the Standard Webhooks spec's reference libraries."""
    key = webhook_delivery.signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = '{"test": 2432232314}'
    assert webhook_delivery.sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) \
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert webhook_delivery.signing_key("r" * 32) == b"r" * 32


def test_the_worker_outlives_a_database_outage(tmp_path, receiver, caplog):
    """No table yet (the database unusable): each round is logged by class and retried; once
    the database is back, the waiting events go out."""
    broken = create_app({**base_config(tmp_path, "sqlite:///" + str(tmp_path / "late.db")),
                         "WEBHOOK_URL": receiver.url, "WEBHOOK_SECRET": SECRET})
    stop = threading.Event()

    def work() -> None:
        with broken.app_context():
            webhook_delivery.run(stop, interval=0.05)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "webhook delivery failed: OperationalError" not in caplog.text \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "webhook delivery failed: OperationalError" in caplog.text
        assert thread.is_alive()
        with broken.app_context():
            db.create_all()
            ids = _emit(2)
            db.session.remove()
        while len(receiver.ids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(receiver.ids()) == sorted(ids)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert "webhook worker stopped" in caplog.text
    with broken.app_context():
        db.engine.dispose()
