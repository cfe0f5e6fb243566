"""Changing a signed-in account's e-mail address: the `change_email` purpose on codes.py.

The link and code go to the NEW address (the account recently signed in). Asking answers
the same whether or not another account holds the address; that shows only when the change
is confirmed (409 email_taken). Confirming switches the address with one conditional UPDATE
in the confirming transaction (the unique index decides between accounts racing for one
address), marks it verified, kills the account's other pending changes, and then tells the
old address. Its links open the verification page (flows/email_verification.py confirms
both purposes).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from authserver import accounts, clock, codes, ratelimits
from authserver.config import settings
from authserver.errors import ErrorCode, Problem, db_error_summary, is_deadlock
from authserver.events import Event, EventType, emit
from authserver.extensions import client_ip, db
from authserver.flows import channels
from authserver.identifiers import normalize_email
from authserver.models import OneTimeCode, User

log = logging.getLogger("authserver.flows.email_change")

CHANGE = codes.Purpose(
    "change_email", channel=codes.EMAIL, ttl="email_verification_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A confirmation mail was just sent to this address. Check its inbox, or "
                    "wait up to {wait} seconds before asking for another.",
    key_label="authserver.change-email.code", link_salt="authserver.change-email",
    link_path="/auth/verify-email", own_slot=True)


def _taken() -> Problem:
    return Problem(409, ErrorCode.EMAIL_TAKEN, "Another account uses this e-mail address.",
                   field="email")


def request_change(user: User, email: str, *, binding: str | None = None) -> dict[str, Any]:
    """Mail a link and code to the NEW address `email` of the signed-in `user` (or its first
    address, for a phone-only account). The same answer whether or not another account
    holds the address: that shows only when the change is confirmed (409 email_taken).
    Raises 422 invalid_email, 400 for the account's own address, 429, 503."""
    email = normalize_email(email)
    if email == user.email:
        raise Problem(400, ErrorCode.INVALID_REQUEST, "This is already the account's address.",
                      field="email")
    channels.mail_code(
        CHANGE, email, "email_change",
        f"Confirm your new e-mail address for {settings().app_name}", user_id=user.id,
        binding=binding, current=user.email or user.phone,
        limits=[(ratelimits.CHANGE_IP, client_ip()), (ratelimits.CHANGE_ADDRESS, email)])
    log.info("e-mail change asked user=%s", user.id)
    return {"sent": True}


def change(user: User, challenge: codes.Challenge) -> User:
    """Switch the account's address to the one `challenge` proved (used already); the unique
    index settles a race. Committed here: the change stands before the old address is told,
    and a notice that fails to send never undoes it."""
    new, old = challenge.subject, user.email
    holder = accounts.by_email(new)
    if holder is not None and holder.id != user.id:
        log.info("e-mail change refused: address taken user=%s", user.id)
        raise _taken()
    try:
        db.session.execute(
            update(User).where(User.id == user.id)
            .values(email=new, email_verified_at=clock.now())
            .execution_options(synchronize_session=False))
        db.session.flush()
    except DBAPIError as exc:
        # A duplicate (the other account committed first) or, on MySQL, a deadlock between
        # the two inserts into the unique index: either way another account has it now.
        # The whole transaction goes (the link stays unused; it would answer 409 again).
        if not isinstance(exc, IntegrityError) and not is_deadlock(exc):
            raise
        db.session.rollback()
        log.info("e-mail change lost a race: %s user=%s", db_error_summary(exc), user.id)
        raise _taken() from None
    _kill_other_changes(user.id, keep=challenge.id)
    # Names no address: the trail is read by administrators, the mail tells the old one.
    emit(Event(EventType.EMAIL_CHANGED, user_id=user.id))
    db.session.commit()
    db.session.refresh(user)
    log.info("e-mail changed link=%s user=%s", challenge.id, user.id)
    if old is not None and old != new:
        _notify_old(old, new)
    return user


def _kill_other_changes(user_id: str, *, keep: str) -> None:
    """The account's other pending changes die with this one (an older link must not switch
    the address again). Other accounts' mails to the same address stay: confirming them
    answers 409 email_taken. Found by a plain read, killed by primary key (see codes._store)."""
    others = [row_id for row_id in db.session.scalars(select(OneTimeCode.id).where(
        OneTimeCode.purpose == CHANGE.name, OneTimeCode.user_id == user_id,
        OneTimeCode.consumed_at.is_(None), OneTimeCode.invalidated_at.is_(None)))
        if row_id != keep]
    if others:
        db.session.execute(update(OneTimeCode).where(
            OneTimeCode.id.in_(others), OneTimeCode.consumed_at.is_(None),
            OneTimeCode.invalidated_at.is_(None)).values(invalidated_at=clock.now())
            .execution_options(synchronize_session=False))


def _notify_old(old: str, new: str) -> None:
    app_name = settings().app_name
    try:
        channels.mail("email_changed", old, f"Your {app_name} e-mail address was changed",
                      new_email=new)
    except Exception as exc:  # the change stands
        log.warning("e-mail changed notice not sent: %s", type(exc).__name__)
