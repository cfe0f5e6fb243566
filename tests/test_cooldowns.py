"""Send slots in the database (authserver.cooldowns): reserve, expiry, release, races."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from authserver import cooldowns
from authserver.extensions import db
from authserver.models import SendCooldown
from tests.race import pool_per_racer, race

KEY = "sms:+16502530000"
RACERS = 20


def _row(key: str = KEY) -> SendCooldown | None:
    db.session.expire_all()
    return db.session.get(SendCooldown, key)


def test_first_reserve_takes_the_slot_and_the_next_waits(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    row = _row()
    assert row is not None
    assert row.next_allowed_at - clock.now() <= timedelta(seconds=30)
    assert row.next_allowed_at - clock.now() > timedelta(seconds=29)
    assert cooldowns.reserve(KEY, 30) == 30
    clock.travel(10)
    assert cooldowns.reserve(KEY, 30) == 20
    clock.travel(19.5)
    assert cooldowns.reserve(KEY, 30) == 1  # rounded up: never "wait 0 seconds"


def test_the_slot_frees_when_the_cooldown_has_passed(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    clock.travel(30)
    assert cooldowns.reserve(KEY, 30) == 0  # the existing row is taken again
    assert cooldowns.reserve(KEY, 30) == 30
    assert db.session.scalar(select(db.func.count()).select_from(SendCooldown)) == 1


def test_keys_are_independent(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    assert cooldowns.reserve("sms:+14155550123", 30) == 0
    assert cooldowns.reserve("email:a@example.com", 30) == 0
    assert cooldowns.reserve(KEY, 30) == 30


def test_a_cooldown_of_zero_reserves_nothing(app: Any) -> None:
    assert cooldowns.reserve(KEY, 0) == 0
    assert cooldowns.reserve(KEY, 0) == 0
    assert _row() is None


def test_release_frees_the_slot_at_once(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    cooldowns.release(KEY, None)
    assert cooldowns.reserve(KEY, 30) == 0
    assert cooldowns.reserve(KEY, 30) == 30


def test_release_puts_back_the_previous_time(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    clock.travel(30)
    previous = _row().next_allowed_at  # type: ignore[union-attr]
    assert cooldowns.reserve(KEY, 30) == 0
    cooldowns.release(KEY, previous)
    assert _row().next_allowed_at == previous  # type: ignore[union-attr]
    assert cooldowns.reserve(KEY, 30) == 0


def test_release_leaves_an_expired_slot_alone(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    clock.travel(40)
    before = _row().next_allowed_at  # type: ignore[union-attr]
    cooldowns.release(KEY, None)
    assert _row().next_allowed_at == before  # type: ignore[union-attr]
    cooldowns.release("sms:+10000000000", None)  # no row: nothing to do
    assert _row("sms:+10000000000") is None


def test_release_never_moves_the_slot_into_the_future(app: Any, clock: Any) -> None:
    assert cooldowns.reserve(KEY, 30) == 0
    cooldowns.release(KEY, clock.now() + timedelta(hours=1))
    assert cooldowns.reserve(KEY, 30) == 0


def test_a_key_longer_than_the_column_is_stored_hashed(app: Any, clock: Any) -> None:
    long_key = "email:" + "a" * 64 + "@" + "b" * 60 + ".example.com"
    assert len(long_key) > cooldowns.MAX_KEY_LENGTH
    assert cooldowns.reserve(long_key, 30) == 0
    assert cooldowns.reserve(long_key, 30) == 30
    assert cooldowns.reserve(long_key + "x", 30) == 0  # another address, another slot
    keys = db.session.scalars(select(SendCooldown.key)).all()
    assert all(k.startswith("sha256:") and len(k) <= cooldowns.MAX_KEY_LENGTH for k in keys)
    cooldowns.release(long_key, None)
    assert cooldowns.reserve(long_key, 30) == 0


# -- races (MySQL: parallel connections and row locks) ----------------------------------------
@pytest.fixture
def config_overrides(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    # A connection per racer, so none waits for the pool behind the start line.
    pool_per_racer(monkeypatch, RACERS)
    return {}


def _race(app: Any, key: str) -> list[Any]:
    """`reserve(key, 30)` in RACERS threads at once."""
    return race(app, lambda: cooldowns.reserve(key, 30), RACERS)


@pytest.fixture
def mysql_only(app: Any) -> None:
    if db.engine.dialect.name != "mysql":
        pytest.skip("concurrency needs MySQL's parallel connections; SQLite serialises writers")


@pytest.mark.usefixtures("mysql_only")
def test_twenty_first_reservations_at_once_exactly_one_wins(app: Any, clock: Any) -> None:
    # No row yet: the racers' INSERTs meet at the primary key.
    results = _race(app, KEY)
    assert results.count(0) == 1, results
    assert all(isinstance(r, int) and 1 <= r <= 30 for r in results if r != 0), results


@pytest.mark.usefixtures("mysql_only")
def test_twenty_reservations_of_a_freed_slot_at_once_exactly_one_wins(
    app: Any, clock: Any
) -> None:
    # The row is there and free: the racers' conditional UPDATEs decide.
    assert cooldowns.reserve(KEY, 30) == 0
    clock.travel(31)
    results = _race(app, KEY)
    assert results.count(0) == 1, results
    assert all(isinstance(r, int) and 1 <= r <= 30 for r in results if r != 0), results
