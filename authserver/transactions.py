"""Where a unit of work commits: at the edge of a request or a CLI command.

Flows, accounts and the token module add and change rows and flush; the view or command
that called them commits once, visibly, with `@committed`. A `Problem` is an expected
outcome whose writes must stand (a wrong code counted, a replayed refresh token's session
revoked), so it commits too; any other exception rolls back.

The one-time-credential engine (codes.py) and the send cooldowns also commit inside a
request, on purpose: a code must be stored before it is sent, and an attempt must be counted
before the guess is compared, so that other connections see it at once. Each of those
commits is a unit of work of its own, run through `unit`.

Retries. MySQL fails the loser of a deadlock with 1213, and a multi-primary cluster (Galera:
a certification failure or a brute-force abort by a write replicated from another node;
Group Replication: a certification failure) fails the loser of a write conflict between
nodes the same way. The loser's transaction is rolled back whole, having done nothing, so
the unit is run again from its start: its reads and checks run again too, and a race loser
gets the answer it would get on one server (the code already used: 401; the address taken:
409), not a 503. 1205 (a lock wait timed out) is retried the same way: only the statement
was undone, and the rollback here undoes the rest; so are 1180 (a COMMIT that failed:
Galera's form of a conflict found while the commit replicated) and 1305 (a savepoint that a
conflict's abort took with it; see RETRYABLE). At most `TRIES` runs, `BACKOFF` seconds
apart (jittered, so two losers don't collide again in step).

A unit that has done something the database can't take back (a text or mail sent,
`irreversible()`) is never run again: a retry must not send a second message. The senders
run after their code and slot are committed by units of their own, so only a conflict in
what follows a send (rare: the request's own commit after it) still answers 503.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

from authserver import metrics
from authserver.errors import Problem, db_errno, db_error_summary
from authserver.extensions import db

log = logging.getLogger("authserver.transactions")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Runs of one unit at most (the first and two retries).
TRIES = 3
#: Seconds between runs: uniform in this range.
BACKOFF = (0.005, 0.05)
#: The MySQL error numbers whose transaction is retried from its start: a deadlock or a
#: cluster write conflict (1213), a lock wait timeout (1205), and a COMMIT that failed (1180:
#: on Galera, "Got error 149 'Lock deadlock; Retry transaction' during COMMIT", a conflict
#: found while the commit was being replicated; the transaction is rolled back either way),
#: and 1305 for a savepoint (accounts.create's): a conflict that aborted the transaction
#: took its savepoints with it, so the ROLLBACK TO SAVEPOINT after the failed statement
#: fails instead, hiding the 1213 (the app has no stored routines, the other 1305).
#: MySQL Group Replication fails a transaction that lost certification with 3101 ("Plugin
#: instructed the server to rollback the current transaction").
RETRYABLE = frozenset({1213, 1205, 1180, 1305, 3101})

_GAVE_UP = "authserver_retries_exhausted"

#: How many irreversible steps (sends) this thread has taken; a unit compares it before
#: and after its run.
_irreversible: contextvars.ContextVar[int] = contextvars.ContextVar(
    "authserver_irreversible", default=0)


def irreversible() -> None:
    """Say that the running unit did something a rollback can't undo (it sent a text or a
    mail): it is not run again after this, whatever fails."""
    _irreversible.set(_irreversible.get() + 1)


def retryable(exc: BaseException) -> int | None:
    """The MySQL error number when `exc` is a conflict worth running the unit again for."""
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return None
    errno = db_errno(exc)
    return errno if errno in RETRYABLE else None


def _again(exc: BaseException, what: str, run: int, sends_before: int) -> bool:
    """After a failed run (rolled back): whether to run the unit again (and note it)."""
    errno = retryable(exc)
    if errno is None:
        return False
    if _irreversible.get() != sends_before:
        log.warning("%s: %s after a send; not retried", what, db_error_summary(exc))
        return False
    if run >= TRIES or getattr(exc, _GAVE_UP, False):
        if not getattr(exc, _GAVE_UP, False):
            log.warning("%s: %s, gave up after %d runs", what, db_error_summary(exc), run)
        # An enclosing unit (the request's edge) does not start the count over.
        setattr(exc, _GAVE_UP, True)
        return False
    metrics.DB_RETRIES.labels(str(errno)).inc()
    log.info("%s: %s, retrying (%d/%d)", what, db_error_summary(exc), run + 1, TRIES)
    time.sleep(random.uniform(*BACKOFF))  # noqa: S311 - jitter, not a secret
    return True


def unit(work: Callable[[], T], what: str) -> T:
    """Run `work` (which reads, writes and ends with its own commit) as one retried unit;
    rolled back and run again from its start after a conflict (see the module's doc).

    What the caller left pending is committed first: the unit's first commit would have
    taken it along, and a rollback for a retry must not lose it. A conflict there is the
    caller's, for its own unit (the request's edge) to run again."""
    if db.session().in_transaction():
        db.session.commit()
    run = 1
    while True:
        sends_before = _irreversible.get()
        try:
            return work()
        except DBAPIError as exc:
            db.session.rollback()
            if not _again(exc, what, run, sends_before):
                raise
        run += 1


def committed(view: F) -> F:
    """Decorator for views and commands: commit what the call did, or roll it back; run it
    again after a conflict (RETRYABLE) unless it sent something."""

    what = getattr(view, "__qualname__", "unit")

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = 1
        while True:
            sends_before = _irreversible.get()
            try:
                try:
                    result = view(*args, **kwargs)
                except Problem:
                    db.session.commit()
                    raise
                db.session.commit()
                return result
            except Problem:
                raise
            except DBAPIError as exc:
                db.session.rollback()
                if not _again(exc, what, run, sends_before):
                    raise
            except BaseException:
                db.session.rollback()
                raise
            run += 1

    return wrapper  # type: ignore[return-value]
