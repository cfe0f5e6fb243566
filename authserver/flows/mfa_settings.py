"""Managing the second factor: set up an authenticator app, turn it off, new recovery codes.

Enrolment (`enroll`, `confirm`) and turning it off (`disable`, `regenerate`) are for a
signed-in person whose sign-in is recent (the API's `require_recent_auth`); `reset` is an
administrator's, `reencrypt` the command line's after a SECRET_KEY rotation. Wrong codes
count against the account's code guesses (CODE_GUESS_LIMIT, 429 rate_limited), as at
sign-in (flows/mfa.py).
"""

from __future__ import annotations

import logging
from typing import Any

from authserver import mfa, ratelimits
from authserver.errors import ErrorCode, Problem
from authserver.events import Event, EventType, Method, emit
from authserver.flows.mfa import invalid_otp, missing_proof, second_factor
from authserver.models import User

log = logging.getLogger("authserver.flows.mfa_settings")


def _not_enrolled() -> Problem:
    return Problem(409, ErrorCode.MFA_NOT_ENROLLED, "No authenticator app is set up.")


def enroll(user: User) -> mfa.Enrolment:
    """A new pending authenticator app (replacing a pending one); 409 when one is set up."""
    return mfa.begin(user)


def confirm(user: User, code: Any) -> list[str]:
    """Confirm the pending app with its first code; returns the recovery codes (shown once).
    401 invalid_otp when wrong; 409 when there is nothing pending."""
    row = mfa.factor(user.id)
    if row is None or row.confirmed_at is not None:
        raise (Problem(409, ErrorCode.MFA_ALREADY_ENROLLED, "The authenticator app is "
                       "already set up.") if row is not None else
               Problem(409, ErrorCode.MFA_NOT_ENROLLED, "Start setting up an authenticator "
                       "app first (POST /api/v1/mfa/totp/enroll)."))
    guesses = (ratelimits.CODE_GUESSES, f"mfa:{user.id}")
    ratelimits.check(*guesses)
    if not mfa.check_code(user.id, code, pending=True):
        ratelimits.count(*guesses)
        raise invalid_otp()
    log.info("totp confirmed user=%s", user.id)
    emit(Event(EventType.MFA_ENROLLED, user_id=user.id, method=Method.TOTP))
    return mfa.new_recovery_codes(user.id)


def _check_proof(user: User, code: Any, recovery_code: Any) -> str:
    """A second-factor proof for an account change: 401 invalid_otp when wrong."""
    if code is None and recovery_code is None:
        raise missing_proof()
    guesses = (ratelimits.CODE_GUESSES, f"mfa:{user.id}")
    ratelimits.check(*guesses)
    method = second_factor(user, code, recovery_code)
    if method is None:
        ratelimits.count(*guesses)
        raise invalid_otp()
    return method


def disable(user: User, code: Any, recovery_code: Any = None) -> None:
    """Turn the app off: needs a current code or a recovery code. 409 when none is set up."""
    if not mfa.enrolled(user.id):
        raise _not_enrolled()
    _check_proof(user, code, recovery_code)
    mfa.remove(user.id)
    emit(Event(EventType.MFA_DISABLED, user_id=user.id))


def regenerate(user: User, code: Any, recovery_code: Any = None) -> list[str]:
    """A new set of recovery codes (the old ones die); needs a current code or a recovery
    code."""
    if not mfa.enrolled(user.id):
        raise _not_enrolled()
    _check_proof(user, code, recovery_code)
    log.info("recovery codes regenerated user=%s", user.id)
    emit(Event(EventType.RECOVERY_CODES_REGENERATED, user_id=user.id))
    return mfa.new_recovery_codes(user.id)


def reset(user_id: str, *, actor_id: str | None = None) -> bool:
    """An administrator removes a user's second factor (they can set up a new one)."""
    removed = mfa.remove(user_id)
    if removed:
        emit(Event(EventType.MFA_RESET, user_id=user_id, actor_id=actor_id))
    log.warning("second factor reset by an administrator user=%s removed=%s", user_id, removed)
    return removed


def reencrypt() -> tuple[int, int]:
    """After a SECRET_KEY rotation: every authenticator secret re-encrypted under the current
    key; (re-encrypted, unreadable). Not committed here."""
    return mfa.reencrypt_secrets()
