"""A failed sign-in, told once: the Problem a sign-in flow raises becomes SIGNIN_FAILED.

Every sign-in flow runs inside `with signin(method) as attempt:`; when it raises a Problem
whose code says the attempt failed (a wrong secret, a lock, a limit, a disabled or
unverified account), the sinks hear SIGNIN_FAILED with that method and outcome before the
Problem goes on. A Problem commits at the edge (transactions.py), and the flows that commit
on their own (a code's attempt) do so before they raise, so the event is kept with them.

`attempt.user_id` is set by the flow once it knows whose account it is, and only from what
the flow has already read: an unknown address or phone stays None, and nothing here names
the address, the phone or what was typed. Problems that are not a failed proof (a malformed
body, a provider outage, the step-up to a second factor) tell nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from authserver.errors import ErrorCode, Problem
from authserver.events import Event, EventType, Method, Outcome, emit

#: The codes of a failed proof, and the outcome each stands for.
FAILURES: dict[ErrorCode, Outcome] = {
    ErrorCode.INVALID_CREDENTIALS: Outcome.WRONG_SECRET,
    ErrorCode.INVALID_OTP: Outcome.WRONG_SECRET,
    ErrorCode.INVALID_LINK: Outcome.WRONG_SECRET,
    ErrorCode.INVALID_GRANT: Outcome.WRONG_SECRET,
    ErrorCode.INVALID_TOKEN: Outcome.WRONG_SECRET,
    ErrorCode.OTP_ATTEMPTS_EXCEEDED: Outcome.LOCKED,
    ErrorCode.PASSWORD_SIGNIN_LOCKED: Outcome.LOCKED,
    ErrorCode.RATE_LIMITED: Outcome.RATE_LIMITED,
    ErrorCode.ACCOUNT_DISABLED: Outcome.DISABLED,
    ErrorCode.EMAIL_NOT_VERIFIED: Outcome.NOT_VERIFIED,
}

#: Set on a Problem once its failure was told.
TOLD = "signin_failure_told"


@dataclass
class Attempt:
    """Whose sign-in this is, once the flow knows (None: unknown, or not yet known)."""

    user_id: str | None = None


@contextmanager
def signin(method: Method, user_id: str | None = None, *,
           account_of: Callable[[], str | None] | None = None) -> Iterator[Attempt]:
    """`account_of`: asked for the account's id on a failure the flow did not name one for
    (it looks up what the person typed, and must cost the same for every answer)."""
    attempt = Attempt(user_id)
    try:
        yield attempt
    except Problem as problem:
        outcome = FAILURES.get(problem.code)
        if outcome is not None and attempt.user_id is None and account_of is not None:
            attempt.user_id = account_of()
        # Told once: a flow that runs inside another (a code's check inside a sign-in) is
        # told by the innermost, which knows most.
        if outcome is not None and not getattr(problem, TOLD, False):
            setattr(problem, TOLD, True)
            emit(Event(EventType.SIGNIN_FAILED, user_id=attempt.user_id, method=method,
                       outcome=outcome, detail={"code": problem.code.value}))
        raise
