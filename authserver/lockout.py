"""Consecutive failed password sign-ins per account, and the lock at the cap (NIST SP 800-63B:
no more than 100 in a row).

Each password attempt takes a place in the address's run *before* the password is compared
(one conditional UPDATE, `count = count + 1 WHERE count < cap`, in the database: shared by
all workers and hosts whatever the limiter storage), and a success ends the run. So even
parallel guessing gets at most SIGNIN_MAX_CONSECUTIVE_FAILURES passwords compared in a row;
then password sign-in for the address answers 403 password_signin_locked, even with the right
password and from a known device (a device token can be stolen; the cap bounds every
guesser). The run is keyed by the normalised address whether or not an account has it: an
unknown address locks the same way, so the lock tells nothing about who has an account.

The owner signs in another way (an e-mailed link or code, or SMS) and that unlocks it: any
successful sign-in ends the run. A password one ends it here; the others open a session, and
a run that started before the account's newest session is over.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, select

from authserver import counters
from authserver.config import settings
from authserver.errors import ErrorCode, Problem
from authserver.models import Session


def _key(email: str) -> str:
    # A hash: the table holds no addresses, and every key has one length.
    return "signin-failures:" + hashlib.sha256(email.encode()).hexdigest()


def _last_sign_in(user_id: str | None) -> Any:
    """The account's newest session's start, as a subquery the run's look reads with it."""
    if user_id is None:
        return None
    return select(func.max(Session.created_at)).where(Session.user_id == user_id) \
        .scalar_subquery()


def _locked() -> Problem:
    return Problem(403, ErrorCode.PASSWORD_SIGNIN_LOCKED,
                   "Password sign-in is locked for this account after too many wrong "
                   "passwords. Sign in with a link or code sent by e-mail; that unlocks it.",
                   field="password")


def attempt(email: str, user_id: str | None) -> None:
    """Count one password attempt for `email` before it is compared (403 once at the cap)."""
    cap = settings().signin_max_consecutive_failures
    if not cap:
        return
    # A sign-in since the run started (another way, or a password one whose end of the run
    # was lost) ended that run: this attempt starts a new one.
    if not counters.extend_run(_key(email), cap=cap, ended_by=_last_sign_in(user_id)):
        raise _locked()


def check(email: str) -> None:
    """403 password_signin_locked when the address's run is at the cap; counts nothing (a
    password checked outside sign-in, e.g. the current one of a password change)."""
    cap = settings().signin_max_consecutive_failures
    if cap and failures(email) >= cap:
        raise _locked()


def failed(email: str) -> None:
    """One more wrong password in the address's run, found outside sign-in (see `check`)."""
    counters.extend_run(_key(email))


def failures(email: str) -> int:
    """Password attempts for `email` in the current run (for tests and support)."""
    return counters.run_count(_key(email))


def succeeded(email: str) -> None:
    """A successful password sign-in: the run is over."""
    counters.reset_run(_key(email))


def forget(email: str) -> None:
    """Drop the address's run in the caller's transaction (its account was deleted)."""
    counters.forget(_key(email))
