"""A unit of work that loses a real MySQL deadlock (1213) is run again from its start
(transactions.unit and @committed), counted in authserver_db_retries_total and logged with
the error number; a unit that sent something is never run again.

The deadlock is real: a second connection holds rows the unit needs and then waits for the
row the unit holds. InnoDB rolls back the lighter transaction, and the second connection has
changed more rows, so the unit is the one that loses.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from authserver import metrics, transactions
from authserver.extensions import db
from authserver.models import Counter
from authserver.transactions import committed, irreversible, unit

KEYS = ("a", "b", "c", "d", "e")


@pytest.fixture
def database_url(mysql_url: str) -> str:
    return mysql_url  # deadlocks are InnoDB's: MySQL only


def _rows() -> None:
    now = datetime.now(UTC)
    db.session.execute(insert(Counter), [{"key": k, "count": 0, "started_at": now}
                                         for k in KEYS])
    db.session.commit()


def _count(key: str) -> int:
    value = db.session.execute(text("SELECT count FROM counters WHERE `key` = :k"),
                               {"k": key}).scalar_one()
    db.session.commit()
    return int(value)


class Rival:
    """Another connection: takes b, c, d, e, then (once told) waits for a."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.holds = threading.Event()
        self.go = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.holds.wait(10)

    def _run(self) -> None:
        try:
            with self.app.app_context(), db.engine.connect() as conn:
                for key in KEYS[1:]:  # one by one: each a record lock by primary key
                    conn.execute(text("UPDATE counters SET count = count + 1 WHERE `key` = :k"),
                                 {"k": key})
                self.holds.set()
                self.go.wait(10)
                conn.execute(text("UPDATE counters SET count = count + 10 WHERE `key` = 'a'"))
                conn.commit()
        except BaseException as exc:  # reported to the test
            self.error = exc

    def join(self) -> None:
        self.thread.join(20)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def _wait_for_lock_wait(app: Any) -> None:
    """Until the rival is blocked on row a (InnoDB lists it as LOCK WAIT)."""
    deadline = time.monotonic() + 10
    with app.app_context(), db.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text("SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                                        "WHERE trx_state = 'LOCK WAIT'")).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the rival never waited for row a")


def _deadlocking_work(app: Any, rival: Rival, runs: list[int], *, send: bool = False) -> None:
    """Take a, let the rival wait for it, then ask for b: the first run deadlocks."""
    runs.append(len(runs) + 1)
    db.session.execute(text("UPDATE counters SET count = count + 100 WHERE `key` = 'a'"))
    if len(runs) == 1:
        if send:
            irreversible()
        rival.go.set()
        _wait_for_lock_wait(app)
    db.session.execute(text("UPDATE counters SET count = count + 100 WHERE `key` = 'b'"))
    db.session.commit()



def _retries() -> float:
    return sum(sample.value for family in metrics.DB_RETRIES.collect()
               for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("errno") == "1213")


def test_a_unit_that_loses_a_deadlock_runs_again_and_is_counted(app, caplog):
    _rows()
    rival = Rival(app)
    runs: list[int] = []
    before = _retries()
    with caplog.at_level(logging.INFO, logger="authserver.transactions"):
        unit(lambda: _deadlocking_work(app, rival, runs), "test unit")
    rival.join()
    assert runs == [1, 2]
    # The first run was undone whole; the second and the rival's both stand.
    assert _count("a") == 110 and _count("b") == 101
    assert _retries() == before + 1
    lines = [r.getMessage() for r in caplog.records if r.name == "authserver.transactions"]
    assert any("test unit" in line and "1213 (deadlock)" in line and "retrying (2/3)" in line
               for line in lines), lines


def test_a_request_edge_runs_the_view_again_after_a_deadlock(app, client):
    _rows()
    runs: list[int] = []
    rivals: list[Rival] = []

    @committed
    def view() -> str:
        _deadlocking_work(app, rivals[0], runs)
        return "ok"

    app.add_url_rule("/_test/deadlock-retry", "deadlock_retry", view)
    rival = Rival(app)
    rivals.append(rival)
    response = client.get("/_test/deadlock-retry")
    rival.join()
    assert response.status_code == 200, response.get_data(as_text=True)
    assert runs == [1, 2]
    assert _count("a") == 110 and _count("b") == 101


def test_a_unit_that_sent_something_is_not_run_again(app, caplog):
    _rows()
    rival = Rival(app)
    runs: list[int] = []
    before = _retries()
    with caplog.at_level(logging.WARNING, logger="authserver.transactions"), \
            pytest.raises(DBAPIError) as failed:
        unit(lambda: _deadlocking_work(app, rival, runs, send=True), "test send")
    rival.join()
    assert transactions.retryable(failed.value) == 1213
    assert runs == [1]
    assert _count("a") == 10 and _count("b") == 1  # only the rival's writes
    assert _retries() == before
    assert any("after a send; not retried" in r.getMessage() for r in caplog.records)
