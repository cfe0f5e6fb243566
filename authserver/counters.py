"""Counts held in the database: one budget for every worker and host, whatever the limiter
storage (RATELIMIT_STORAGE_URI=memory:// keeps its counters per process).

Two kinds, one table (models.Counter):

- windows: `take(key, amount, seconds)` takes one unit of "`amount` per `seconds`" or says
  how long to wait; `give_back` returns a unit taken for something that did not happen. It
  is a sliding-window counter: the window's count plus the previous window's count weighted
  by how much of it still overlaps the last `seconds`, so a burst at a window's edge can't
  spend the budget twice. Taking is one conditional UPDATE by primary key
  (`count = count + 1 WHERE key = :k AND count < :room`) whose row count decides, so of
  concurrent takers no more than the room get through, on MySQL as on SQLite. A large budget
  is spread over a few rows (SHARDS), so that concurrent takers seldom write the same row.
- runs: `extend_run` (atomic, up to a cap), `run_count` and `end_run` keep a count of events
  in a row (password sign-in attempts not followed by a success) and when the run started.

Like cooldowns.py, each step commits at once, so every other connection sees it before the
caller goes on (sends a text, compares a password).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, false, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from authserver import clock
from authserver.extensions import db
from authserver.models import Counter
from authserver.transactions import retryable, unit

#: The key column's width; longer keys are stored as a hash.
MAX_KEY_LENGTH = 100


def _stored_key(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _look(stored: str, ended_by: Any) -> tuple[int, datetime, bool] | None:
    """The row's count, start, and whether its run is over (it started at or before
    `ended_by`: a datetime, or a scalar subquery read in the same plain, non-locking
    statement); None without a row."""
    over = false() if ended_by is None else Counter.started_at <= ended_by
    row = db.session.execute(select(Counter.count, Counter.started_at, over)
                             .where(Counter.key == stored)).first()
    return None if row is None else (int(row[0]), row[1], bool(row[2]))


def _settled(step: Callable[[], bool], what: str) -> bool:
    """`step` as a unit; False (look again) when its racers kept deadlocking it past the
    unit's own retries: the INSERTs and DELETEs of one busy key (a burst of sign-ins of one
    address) can, and each look is a fresh start."""
    try:
        return unit(step, what)
    except DBAPIError as exc:
        if retryable(exc) is None:
            raise
        return False


#: Looks at a row `_add_one` may take before it gives up (see there).
MAX_LOOKS = 50


def _add_one(stored: str, room: int | None, started_at: datetime, *,
             ended_by: Any = None) -> bool:
    """count + 1 if the row has room (a missing row, or one whose run is over by `ended_by`
    (see _look), starts again with count 1); True if added.

    The row is looked at first with a plain (non-locking) read, then changed by primary key:
    an UPDATE of a key with no row would lock the gap where it would be, and gap locks are
    neither replicated between cluster nodes nor harmless there (a write from another node
    into that gap aborts this transaction). Each write is a unit of its own
    (transactions.unit): concurrent INSERTs of a missing key and an `end_run` DELETE of it can
    deadlock on MySQL even as one-statement transactions (the duplicate-key check's shared
    locks), and on a cluster two nodes can write the row at once; the loser (1213) did
    nothing and is simply run again."""
    condition = [Counter.key == stored]
    if room is not None:
        condition.append(Counter.count < room)

    def add() -> bool:
        added = db.session.execute(
            update(Counter).where(*condition).values(count=Counter.count + 1)
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        db.session.commit()  # at once: no row lock held into anything else
        return added

    def restart(seen: datetime) -> bool:
        # By primary key, only while the run is still the one looked at (a racer that
        # restarted it first moved started_at on, and this one looks again). No subquery
        # here: one in an UPDATE would lock the rows it reads.
        restarted = db.session.execute(
            update(Counter).where(Counter.key == stored, Counter.started_at == seen)
            .values(count=1, started_at=started_at)
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        db.session.commit()
        return restarted

    def make() -> bool:
        try:
            # The first INSERT of a key wins; a racing one hits the primary key and looks
            # again, finding the winner's row.
            db.session.execute(insert(Counter).values(key=stored, count=1,
                                                      started_at=started_at))
            db.session.commit()
            return True
        except IntegrityError:
            db.session.rollback()
            return False

    # Each look that loses a race means another request made, filled or ended the row in
    # between; under a burst on one key (twenty sign-ins of one address, each success ending
    # the run) five looks were not always enough, and "gave up" read as "full" (a 403 lock
    # for an address with no wrong password). Racers finish, so this ends long before.
    for _ in range(MAX_LOOKS):
        looked = _look(stored, ended_by)
        db.session.commit()
        if looked is None or looked[2]:
            if room is not None and room < 1:
                return False
            step = make if looked is None else functools.partial(restart, looked[1])
            if _settled(step, "counters.make"):
                return True
            continue  # a racer made or restarted the row: count on it
        current = looked[0]
        if room is not None and current >= room:
            return False  # full
        if _settled(add, "counters.add"):
            return True
        # The row went full (or away) between the look and the UPDATE: look again.
    return False


# -- windows ---------------------------------------------------------------------------------
#: A window whose budget is at least SHARD_MIN is kept in up to SHARDS rows, each with its
#: share of the room: a budget every request takes from (the global SMS cap) is then not one
#: row every request writes, which on a multi-primary cluster makes concurrent requests on
#: different nodes conflict (and be aborted) all the time. The shares add up to the room, so
#: no more than the budget is ever taken; a taker tries the shards in a random order.
SHARDS = 8
SHARD_MIN = 64


def _window_key(key: str, seconds: int, index: int, shard: int = 0) -> str:
    suffix = f"#{shard}" if shard else ""
    return _stored_key(f"{key}:{seconds}s:{index}{suffix}")


def _window_keys(key: str, seconds: int, index: int) -> list[str]:
    return [_window_key(key, seconds, index, shard) for shard in range(SHARDS)]


def _shards(amount: int) -> int:
    return min(SHARDS, amount // (SHARD_MIN // SHARDS)) if amount >= SHARD_MIN else 1


def take(key: str, amount: int, seconds: int) -> tuple[str | None, int]:
    """Take one unit of `amount` per `seconds` for `key`.

    Returns (the row to `give_back` it to, 0) when taken, else (None, seconds to wait).
    """
    now = clock.now().timestamp()
    index = int(now // seconds)
    window_start = index * seconds
    overlap = 1 - (now - window_start) / seconds  # share of the previous window still in view
    previous = db.session.scalar(select(func.coalesce(func.sum(Counter.count), 0)).where(
        Counter.key.in_(_window_keys(key, seconds, index - 1)))) or 0
    db.session.commit()
    # This one fits while (this window's count + 1) + previous * overlap <= amount.
    room = math.floor(amount - int(previous) * overlap)
    shards = _shards(amount)
    started_at = datetime.fromtimestamp(window_start, UTC)
    for shard in random.sample(range(shards), shards):
        share = max(0, room) // shards + (1 if shard < max(0, room) % shards else 0)
        if share < 1:
            continue
        stored = _window_key(key, seconds, index, shard)
        if _add_one(stored, share, started_at):
            return stored, 0
    return None, max(1, math.ceil(window_start + seconds - now))


def give_back(stored: str) -> None:
    """Return a unit `take` handed out, for a send that did not happen."""
    def work() -> None:
        db.session.execute(
            update(Counter).where(Counter.key == stored, Counter.count > 0)
            .values(count=Counter.count - 1).execution_options(synchronize_session=False))
        db.session.commit()

    unit(work, "counters.give_back")


def clear_windows(key: str, seconds: int) -> None:
    """Forget the current and previous windows of `key`."""
    index = int(clock.now().timestamp() // seconds)
    db.session.execute(delete(Counter).where(Counter.key.in_(
        _window_keys(key, seconds, index) + _window_keys(key, seconds, index - 1))))
    db.session.commit()


# -- runs ------------------------------------------------------------------------------------
def run_count(key: str, *, ended_by: datetime | None = None) -> int:
    """The length of `key`'s run; a run that started at or before `ended_by` is over (0)."""
    stored = _stored_key(key)
    row = db.session.execute(
        select(Counter.count, Counter.started_at).where(Counter.key == stored)).first()
    db.session.commit()
    if row is None:
        return 0
    count, started_at = row
    if ended_by is not None and started_at <= ended_by:
        end_run(key, started_by=ended_by)
        return 0
    return int(count)


def extend_run(key: str, *, cap: int | None = None, ended_by: Any = None) -> bool:
    """One more event in `key`'s run (the first one starts it); False, counting nothing,
    when the run already has `cap` events. A run that started at or before `ended_by` (a
    datetime, or a scalar subquery: the account's last sign-in) is over: this event starts
    a new one, in the same statements as counting it."""
    return _add_one(_stored_key(key), cap, clock.now(), ended_by=ended_by)


def end_run(key: str, *, started_by: datetime | None = None) -> None:
    """End `key`'s run (only if it started at or before `started_by`, when given)."""
    condition = [Counter.key == _stored_key(key)]
    if started_by is not None:
        condition.append(Counter.started_at <= started_by)
    def work() -> None:
        db.session.execute(delete(Counter).where(*condition))
        db.session.commit()

    unit(work, "counters.end_run")


def reset_run(key: str) -> None:
    """End `key`'s run: its count back to 0, in a short unit of its own, committed at once.

    The row stays: deleting it would make the next attempt's INSERT the delete-then-insert of
    one key that deadlocks racing requests on MySQL. Not in the caller's transaction either:
    there, every write to the row by a racing request on another cluster node would abort the
    whole sign-in. A reset that keeps losing to racers past the unit's retries is given up:
    the run it would end started before the sign-in that ended it, and the next attempt's
    look (extend_run's `ended_by`) ends it then."""
    def work() -> bool:
        db.session.execute(update(Counter).where(Counter.key == _stored_key(key),
                                                 Counter.count > 0)
                           .values(count=0).execution_options(synchronize_session=False))
        db.session.commit()
        return True

    _settled(work, "counters.reset_run")


def forget(key: str) -> None:
    """Delete `key`'s row in the caller's transaction (an account's deletion)."""
    db.session.execute(delete(Counter).where(Counter.key == _stored_key(key)))


def prune(before: datetime) -> int:
    """Delete windows and runs that started before `before`; returns how many."""
    result = db.session.execute(delete(Counter).where(Counter.started_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
