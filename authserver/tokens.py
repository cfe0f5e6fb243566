"""The convergence point: every sign-in flow ends in `issue(user, amr)`, every refresh in
`refresh(refresh_token)`.

`issue` opens a session (sessions.py), signs a short-lived JWT access token for it
(access_tokens.py) and hands back an `IssuedTokens`. Checking a caller's token is auth.py's
(`require_auth`, `require_role`, `current_user`); the names below re-export it, and the
session operations, so that `tokens.verify`, `tokens.revoke_session`, … keep working.

Nothing here commits a sign-in: the request or command that called commits it (`@committed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authserver import access_tokens, mfa, sessions
from authserver.access_tokens import Claims, decode
from authserver.auth import (
    bearer_token,
    current_user,
    require_aal,
    require_auth,
    require_recent_auth,
    require_role,
    verify,
)
from authserver.errors import Problem
from authserver.events import Event, EventType, Method, Outcome, emit
from authserver.models import Session, User

__all__ = [
    "Claims",
    "IssuedTokens",
    "bearer_token",
    "current_user",
    "decode",
    "issue",
    "refresh",
    "require_aal",
    "require_auth",
    "require_recent_auth",
    "require_role",
    "revoke_session",
    "revoke_user_sessions",
    "session_is_active",
    "verify",
]

revoke_session = sessions.revoke
revoke_user_sessions = sessions.revoke_all
session_is_active = sessions.active


@dataclass(frozen=True)
class IssuedTokens:
    """What a sign-in or a refresh produced: the tokens, and the session they belong to."""

    access_token: str = field(repr=False)
    token_type: str
    expires_in: int
    refresh_token: str = field(repr=False)
    user: User
    session_id: str
    amr: tuple[str, ...]

    def response(self) -> dict[str, Any]:
        """The token response body, in the contract's key order."""
        return {"access_token": self.access_token, "token_type": self.token_type,
                "expires_in": self.expires_in, "refresh_token": self.refresh_token,
                "user": self.user.to_dict()}


def _issued(user: User, session: Session, refresh_token: str) -> IssuedTokens:
    amr = session.amr_list
    access_token, ttl = access_tokens.sign(user.id, session.id, amr, user.role_names,
                                           auth_time=int(session.authenticated_at.timestamp()))
    return IssuedTokens(access_token=access_token, token_type="Bearer", expires_in=ttl,
                        refresh_token=refresh_token, user=user, session_id=session.id,
                        amr=tuple(amr))


#: The sign-in method an amr stands for, when the caller names none: a second factor wins.
_AMR_METHODS = {mfa.TOTP_AMR: Method.TOTP, mfa.RECOVERY_AMR: Method.RECOVERY_CODE,
                "pwd": Method.PASSWORD, "sms": Method.SMS, "email": Method.EMAIL_LINK}


def method_of(amr: list[str]) -> Method | None:
    """How a sign-in with this amr was proved: its second factor, else its first."""
    for value in (mfa.TOTP_AMR, mfa.RECOVERY_AMR, *amr):
        if value in amr and value in _AMR_METHODS:
            return _AMR_METHODS[value]
    return None


def issue(user: User, amr: list[str], *, client: str = "api",
          auth_time: datetime | None = None, method: Method | None = None) -> IssuedTokens:
    """Open a session for a user who just proved who they are; return its tokens.

    `auth_time` is when they proved it, when that was not just now (a signed-in browser
    handing its sign-in over to an app).

    The step-up: a user with an authenticator app who proved one factor gets no tokens but
    `401 mfa_required` with an mfa_token (mfa.require_second_factor, which commits the first
    factor's use with the token); `POST /mfa/verify` then comes back here with the second
    factor in `amr`.

    Every sign-in is told here (events.py): SIGNIN_SUCCEEDED with `method` (by default the
    one `amr` stands for) and MFA_REQUIRED at a step-up; a refusal is the flow's to tell
    (flows/attempts.py).
    """
    method = method or method_of(amr)
    detail: dict[str, Any] = {"client": client, "amr": list(amr)}
    if user.disabled:
        raise Problem(403, "account_disabled", "This account has been disabled.")
    if mfa.needs_second_factor(user, amr):
        # Before the step-up, whose commit then keeps it with the first factor's use.
        emit(Event(EventType.MFA_REQUIRED, user_id=user.id, method=method, detail=detail))
        mfa.require_second_factor(user, amr, client)
    session, refresh_token = sessions.open_session(user, amr, client, auth_time=auth_time)
    emit(Event(EventType.SIGNIN_SUCCEEDED, user_id=user.id, method=method,
               outcome=Outcome.SUCCESS, detail={**detail, "session_id": session.id}))
    return _issued(user, session, refresh_token)


def refresh(refresh_token: str) -> IssuedTokens:
    """Rotate a refresh token (see sessions.rotate): new access and refresh tokens come back."""
    rotated = sessions.rotate(refresh_token)
    emit(Event(EventType.REFRESHED, user_id=rotated.user.id, method=Method.REFRESH,
               outcome=Outcome.SUCCESS, detail={"session_id": rotated.session.id}))
    return _issued(rotated.user, rotated.session, rotated.refresh_token)
