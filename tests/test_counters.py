"""Database-held counters (counters.py): sliding windows and runs, on SQLite and MySQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from authserver import counters

HOUR = 3600


def _at_window_start(clock: Any, seconds: int = HOUR, into: float = 0.0) -> None:
    """Move the clock to `into` (a share) of the next window of `seconds`."""
    now = clock.now().timestamp()
    clock.travel((now // seconds + 1) * seconds - now + into * seconds)


def _takes(key: str, n: int, amount: int = 5) -> list[bool]:
    return [counters.take(key, amount, HOUR)[0] is not None for _ in range(n)]


def test_take_stops_at_the_amount_and_says_how_long_to_wait(app: Any, clock: Any) -> None:
    _at_window_start(clock, into=0.5)
    assert _takes("k", 6) == [True] * 5 + [False]
    row, wait = counters.take("k", 5, HOUR)
    assert row is None and 1 <= wait <= HOUR / 2 + 1


def test_no_double_burst_at_a_window_edge(app: Any, clock: Any) -> None:
    """5 an hour, all spent just before the hour: just after it, the old window still counts."""
    _at_window_start(clock, into=0.99)
    assert _takes("k", 5) == [True] * 5
    _at_window_start(clock, into=0.01)  # a fixed window would allow 5 more now
    assert _takes("k", 5) == [False] * 5
    clock.travel(0.5 * HOUR)  # half of the last window's 5 still in view: room for 2
    assert _takes("k", 3) == [True, True, False]


def test_give_back_returns_a_unit(app: Any, clock: Any) -> None:
    _at_window_start(clock, into=0.5)
    rows = [counters.take("k", 2, HOUR)[0] for _ in range(2)]
    assert counters.take("k", 2, HOUR)[0] is None
    assert rows[0] is not None
    counters.give_back(rows[0])
    assert counters.take("k", 2, HOUR)[0] is not None


def test_keys_are_separate_and_long_keys_fit(app: Any, clock: Any) -> None:
    _at_window_start(clock, into=0.5)
    long_key = "x" * 300
    assert _takes(long_key, 2, amount=1) == [True, False]
    assert _takes(long_key + "y", 1, amount=1) == [True]


def test_runs_count_cap_and_end(app: Any, clock: Any) -> None:
    assert counters.run_count("r") == 0
    assert [counters.extend_run("r", cap=3) for _ in range(4)] == [True, True, True, False]
    assert counters.run_count("r") == 3
    started = clock.now()
    clock.travel(10)
    counters.end_run("r", started_by=started - timedelta(seconds=1))
    assert counters.run_count("r") == 3  # started after that time: not ended
    assert counters.run_count("r", ended_by=clock.now()) == 0  # a sign-in since: over
    assert counters.extend_run("r", cap=3)
    counters.end_run("r")
    assert counters.run_count("r") == 0
