"""Proving an account's own e-mail address after the fact: the `verify_email` purpose.

The mail (a link and a 6-digit code, codes.py) goes to the account's own address after a
password sign-up committed, and on request; using it marks the address verified. With
EMAIL_VERIFICATION_REQUIRED it also signs in: it is the only way into a new password
account. An address that already has an account gets, instead, a mail saying someone tried
to sign up with it (a row whose code is never shown, so the answer and the work are those of
a new sign-up). Links and codes are used through flows/email_confirmation.py, which this
purpose shares with a change of address.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update

from authserver import clock, codes, ratelimits
from authserver.config import settings
from authserver.errors import ErrorCode, Problem, db_error_summary
from authserver.events import Event, EventType, emit
from authserver.extensions import client_ip, db
from authserver.flows import channels
from authserver.models import User

log = logging.getLogger("authserver.flows.email_verification")

VERIFY = codes.Purpose(
    "verify_email", channel=codes.EMAIL, ttl="email_verification_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A verification mail was just sent. Check your inbox, or wait up to "
                    "{wait} seconds before asking for another.",
    key_label="authserver.verify-email.code", link_salt="authserver.verify-email",
    link_path="/auth/verify-email", own_slot=True)


def _send(email: str, template: str, subject: str, user_id: str | None,
          binding: str | None) -> None:
    channels.mail_code(
        VERIFY, email, template, subject, user_id=user_id, binding=binding,
        limits=[(ratelimits.VERIFY_IP, client_ip()), (ratelimits.VERIFY_ADDRESS, email)])


def after_sign_up(email: str, user_id: str | None, *, binding: str | None = None) -> None:
    """After a password sign-up COMMITTED: mail `email` its verification link and code
    (`user_id`: the new account), or, when the address already had an account (None), the
    "someone tried to sign up with your address" notice. Never raises: a sign-up stands
    whatever the mail does (the person can ask again with POST /email/verify/resend)."""
    app_name = settings().app_name
    template, subject = (
        ("verify_email", f"Confirm your e-mail address for {app_name}") if user_id else
        ("signup_exists", f"Someone tried to sign up to {app_name} with your address"))
    try:
        _send(email, template, subject, user_id, binding)
    except Problem as problem:
        log.warning("sign-up mail not sent: %s", problem.code)
    except Exception as exc:
        db.session.rollback()
        log.warning("sign-up mail not sent: %s", db_error_summary(exc))


def resend(user: User, *, binding: str | None = None) -> dict[str, Any]:
    """Mail the signed-in account's own address a new verification link and code.
    400 invalid_request without an address or when it is already verified; 429; 422; 503."""
    if user.email is None:
        raise Problem(400, ErrorCode.INVALID_REQUEST, "This account has no e-mail address yet: "
                                                      "add one with POST /api/v1/me/email.")
    if user.email_verified_at is not None:
        raise Problem(400, ErrorCode.INVALID_REQUEST, "This e-mail address is already verified.")
    _send(user.email, "verify_email", f"Confirm your e-mail address for {settings().app_name}",
          user.id, binding)
    return {"sent": True}


def verify(user: User, challenge: codes.Challenge) -> bool:
    """Mark the address `challenge` (used already) was sent to as verified, if it is still
    the account's; the account's other verification mails die. False when the address
    changed since the mail was sent."""
    if user.email != challenge.subject:
        return False
    verified = db.session.execute(
        update(User).where(User.id == user.id, User.email == challenge.subject,
                           User.email_verified_at.is_(None))
        .values(email_verified_at=clock.now()).execution_options(synchronize_session=False)
    ).rowcount == 1  # type: ignore[attr-defined]
    db.session.expire(user)
    codes.supersede(VERIFY, challenge.subject, keep=challenge.id)
    if verified:
        emit(Event(EventType.EMAIL_VERIFIED, user_id=user.id))
    log.info("e-mail verified link=%s user=%s", challenge.id, user.id)
    return True
