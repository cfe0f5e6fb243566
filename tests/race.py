"""One harness for the tests that race N threads on one operation against MySQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from authserver import config as settings
from authserver.errors import Problem
from authserver.extensions import db
from authserver.transactions import committed

BARRIER_TIMEOUT = 30  # seconds the racers wait for each other at the start line
JOIN_TIMEOUT = 60  # seconds the test waits for each racer to finish


def race(
    app: Any, work: Callable[[], Any], count: int = 20, *, remote_addr: str | None = None
) -> list[Any]:
    """Run `work()` in `count` threads as nearly at once as can be; one outcome per thread.

    An outcome is what `work()` returned, the `Problem` it raised (kept whole: callers check
    its code, status, headers and detail), or, for any other exception, its class name. A
    database error (a deadlock, a duplicate key) is a real failure of the code under test, so
    it comes back as a plain name the assertions show, not as a crashed thread that the test
    would never see. Outcomes are in the order the threads finished.

    Each thread gets its own request context (REMOTE_ADDR `remote_addr` when given), hence its
    own session, and each step is there for a reason:

    - Warm-up: the thread runs SELECT 1 and commits before the start line, so its database
      connection is already open and back in the pool. Connecting takes milliseconds, enough
      to serialise the racers and hide a check-then-act bug. (This only helps if the pool
      keeps a connection per racer: see `pool_per_racer`.)
    - Barrier: all threads wait for each other and then run `work()` together. It has a
      timeout, so a racer that never arrives breaks the barrier (the others report
      "BrokenBarrierError") instead of hanging the test run.
    - `work()` runs as a request's view does, under `@committed`: its writes commit when it
      returns (or raises a Problem) and roll back on any other error.
    - The session is removed in the thread that used it, returning its connection.
    - Join with a timeout, then assert that every thread finished: a racer stuck on a lock
      fails the test rather than silently dropping out of the count.
    """
    barrier = threading.Barrier(count, timeout=BARRIER_TIMEOUT)
    outcomes: list[Any] = []
    lock = threading.Lock()
    environ = {"REMOTE_ADDR": remote_addr} if remote_addr is not None else {}

    def run() -> None:
        with app.test_request_context("/", environ_base=environ):
            try:
                db.session.execute(text("SELECT 1"))
                db.session.commit()
                barrier.wait()
                # As a request would: what `work` did commits at its edge (transactions.py).
                outcome: Any = committed(work)()
            except Problem as problem:
                outcome = problem
            except Exception as exc:  # a database error is a real failure: keep its name
                outcome = type(exc).__name__
                number = getattr(getattr(exc, "orig", None), "args", (None,))[:1]
                if number and isinstance(number[0], int):
                    outcome += f" {number[0]}"  # the driver's error number: 1213 deadlock
            finally:
                db.session.remove()
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run, name=f"racer-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_TIMEOUT)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"racers still running after {JOIN_TIMEOUT}s: {stuck}"
    assert len(outcomes) == count, outcomes
    return outcomes


def pool_per_racer(monkeypatch: pytest.MonkeyPatch, count: int = 20) -> None:
    """Give the next app's engine a pooled connection per racer (and two to spare).

    With SQLAlchemy's default pool (5 kept, 10 overflow) most racers' warmed-up connections
    would be closed on return and reopened after the start line. Call it from the module's
    `config_overrides` fixture, which runs before the app and its engine are made.
    """
    original = settings.engine_options

    def engine_options(url: str) -> dict[str, Any]:
        return {**original(url), "pool_size": count + 2, "max_overflow": 0}

    monkeypatch.setattr(settings, "engine_options", engine_options)
