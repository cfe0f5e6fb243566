"""The signed-in account changing itself: phone, password, deletion, sessions.

Sensitive changes (phone, password, deletion) need a recent sign-in
(`require_recent_auth`: 401 reauthentication_required after REAUTH_MAX_AGE).
"""

from __future__ import annotations

from typing import Any

from flask import g

from authserver import audit, tokens
from authserver.api import bp
from authserver.api.endpoint import BEARER, endpoint
from authserver.errors import ErrorCode as E
from authserver.flows import account, account_sessions, phone_change
from authserver.schemas.requests import PasswordChange, PhoneChange, PhoneChangeVerify
from authserver.schemas.responses import (
    ActivityList,
    OtpSent,
    SessionList,
    User,
    user_object,
)
from authserver.transactions import committed

RECENT = {401: [E.REAUTHENTICATION_REQUIRED]}


@bp.post("/me/phone")
@tokens.require_recent_auth
@committed
@endpoint(summary="Text a code to a phone to add it to the account", tag="account",
          request=PhoneChange, response=OtpSent, status=202, security=(BEARER,),
          description="The same answer whether or not another account holds the number.",
          errors={**RECENT, 422: [E.INVALID_PHONE, E.PHONE_COUNTRY_NOT_ALLOWED],
                  429: [E.RATE_LIMITED], 503: [E.SERVICE_UNAVAILABLE]})
def phone_request(body: PhoneChange) -> dict[str, Any]:
    return phone_change.request_code(tokens.current_user(), body.phone)


@bp.post("/me/phone/verify")
@tokens.require_recent_auth
@committed
@endpoint(summary="Set the account's phone with the texted code", tag="account",
          request=PhoneChangeVerify, response=User, security=(BEARER,),
          errors={401: [E.REAUTHENTICATION_REQUIRED, E.INVALID_OTP], 409: [E.PHONE_TAKEN],
                  422: [E.INVALID_PHONE], 429: [E.OTP_ATTEMPTS_EXCEEDED, E.RATE_LIMITED],
                  503: [E.SERVICE_UNAVAILABLE]})
def phone_verify(body: PhoneChangeVerify) -> User:
    return user_object(phone_change.verify_code(tokens.current_user(), body.phone, body.code))


@bp.post("/me/password")
@tokens.require_recent_auth
@committed
@endpoint(summary="Set a new password", tag="account", request=PasswordChange, status=204,
          security=(BEARER,),
          description="`current_password` is required when the account has a password. "
                      "Every other session of the account ends; a notice is mailed.",
          errors={401: [E.REAUTHENTICATION_REQUIRED, E.INVALID_CREDENTIALS],
                  403: [E.PASSWORD_SIGNIN_LOCKED],
                  422: [E.WEAK_PASSWORD, E.BREACHED_PASSWORD], 429: [E.RATE_LIMITED],
                  503: [E.SERVICE_UNAVAILABLE]})
def password_change(body: PasswordChange) -> None:
    account.change_password(g.claims.user_id, g.claims.session_id, body.current_password,
                            body.password)


@bp.delete("/me")
@tokens.require_recent_auth
@committed
@endpoint(summary="Delete the account", tag="account", status=204, security=(BEARER,),
          description="Every session ends; the account's personal data is deleted.",
          errors=RECENT)
def delete_me() -> None:
    account.delete_account(g.claims.user_id)


@bp.get("/me/sessions")
@tokens.require_auth
@endpoint(summary="The account's open sessions", tag="account", response=SessionList,
          security=(BEARER,))
def list_sessions() -> SessionList:
    return SessionList.model_validate(
        {"sessions": account_sessions.list_sessions(g.claims.user_id, g.claims.session_id)})


@bp.delete("/me/sessions/<session_id>")
@tokens.require_auth
@committed
@endpoint(summary="End one of the account's sessions", tag="account", status=204,
          security=(BEARER,), errors={404: [E.NOT_FOUND]})
def end_session(session_id: str) -> None:
    account_sessions.end_session(g.claims.user_id, session_id)


@bp.get("/me/activity")
@tokens.require_auth
@endpoint(summary="The account's recent security events", tag="account",
          response=ActivityList, security=(BEARER,),
          description="The last 20 events about this account (sign-ins and refused ones, "
                      "sign-outs, changes), newest first.")
def activity() -> ActivityList:
    return ActivityList.model_validate(
        {"events": [audit.own_view(row) for row in audit.recent(g.claims.user_id)]})
