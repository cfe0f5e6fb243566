"""Send cooldowns held in the database: of concurrent sends to one key, exactly one goes.

A flow that texts a phone or mails an address first reserves the key's send slot:

    wait = cooldowns.reserve("sms:+16502530000", 30)   # 0: this caller may send
    ...send...; on a failed send: cooldowns.release(key, None)

Reserving is one conditional UPDATE by primary key (`next_allowed_at = now + cooldown WHERE
key = :k AND next_allowed_at <= now`) whose row count decides; a key seen for the first time
is INSERTed, and the primary key lets only one of racing INSERTs through (the others are "not
reserved").
Each step is committed at once, so a reservation is visible to every other connection before
the caller sends anything. Being in the database, it holds across gunicorn workers even when
the limiter storage is per process (RATELIMIT_STORAGE_URI=memory://), on MySQL and SQLite.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from authserver import clock
from authserver.extensions import db
from authserver.models import SendCooldown
from authserver.transactions import unit

#: The key column's width; longer keys (a long e-mail address) are stored as a hash.
MAX_KEY_LENGTH = 100


def _stored_key(key: str) -> str:
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _seconds_left(until: datetime | None, now: datetime) -> int:
    if until is None:
        return 0
    return max(0, math.ceil((until - now).total_seconds()))


def reserve(key: str, seconds: int) -> int:
    """Take `key`'s send slot for `seconds`: 0 if this caller got it, else seconds to wait.

    A cooldown of 0 or less reserves nothing and always answers 0.
    """
    if seconds <= 0:
        return 0
    # One unit: after a conflict (a racer on another cluster node) it all runs again, and
    # then sees the racer's row.
    return unit(lambda: _reserve(_stored_key(key), seconds), "cooldowns.reserve")


def _reserve(stored: str, seconds: int) -> int:
    now = clock.now()
    until = now + timedelta(seconds=seconds)
    # Looked at first with a plain read, then written by primary key: an UPDATE of a key with
    # no row would lock the gap where it would be, and on a cluster a write from another node
    # into that gap aborts this transaction.
    left = _time_left(stored)
    if left is None:
        # No row yet: the first INSERT of the key wins, racing ones hit the primary key.
        try:
            db.session.execute(insert(SendCooldown).values(key=stored, next_allowed_at=until))
            db.session.commit()
            return 0
        except IntegrityError:
            db.session.rollback()
        left = _time_left(stored)
    elif left == 0:
        now = clock.now()  # the read's clock or later: the slot it found free still is
        until = now + timedelta(seconds=seconds)
        taken = db.session.execute(
            update(SendCooldown)
            .where(SendCooldown.key == stored, SendCooldown.next_allowed_at <= now)
            .values(next_allowed_at=until)
            .execution_options(synchronize_session=False)
        ).rowcount == 1  # type: ignore[attr-defined]
        db.session.commit()  # on its own: no lock held into anything else
        if taken:
            return 0
        left = _time_left(stored)
    # At least 1: this caller did not get the slot (a row found free was taken a moment
    # ago; asking again will do). At most the cooldown: a racer that read the clock a little
    # after this one may hold the slot a little past our now + seconds.
    return min(seconds, max(1, left or 0))


def _time_left(stored: str) -> int | None:
    """Seconds until the slot frees (0: free now); None when the key has no row."""
    until = db.session.scalar(
        select(SendCooldown.next_allowed_at).where(SendCooldown.key == stored))
    db.session.commit()
    return None if until is None else _seconds_left(until, clock.now())


def release(key: str, previous: datetime | None) -> None:
    """Give back a slot `reserve` handed out, after a send that failed (it costs nothing).

    The key's next send is allowed from `previous` again (the time it held before the
    reservation, when the caller knows it), or from now when `previous` is None. Only a
    reservation still running is touched. Were a send to fail only after its cooldown had
    run out, this could free a later caller's slot early; sends give up well within the
    cooldowns (SMS_PROVIDER_TIMEOUT, SMTP_TIMEOUT), so that needs a cooldown set shorter
    than the sender's timeout.
    """
    stored = _stored_key(key)

    def work() -> None:
        now = clock.now()
        db.session.execute(
            update(SendCooldown)
            .where(SendCooldown.key == stored, SendCooldown.next_allowed_at > now)
            .values(next_allowed_at=previous if previous is not None and previous <= now
                    else now)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()

    unit(work, "cooldowns.release")



def forget(*keys: str) -> None:
    """Delete the slots of `keys` in the caller's transaction (an account's deletion)."""
    db.session.execute(delete(SendCooldown).where(
        SendCooldown.key.in_([_stored_key(key) for key in keys])))
