"""Proving an e-mail address after the fact: a sign-up's verification mail (`verify_email`)
and a change of address (`change_email`), each a mailed link and 6-digit code (codes.py).

- `verify_email` is sent to the account's own address after a password sign-up committed
  (and on request); using it marks the address verified. With EMAIL_VERIFICATION_REQUIRED
  it also signs in: it is the only way into a new password account. An address that already
  has an account gets, instead, a mail saying someone tried to sign up with it (a row whose
  code is never shown, so the answer and the work are those of a new sign-up).
- `change_email` is sent to the NEW address of a signed-in account (recently signed in);
  using it switches the account's address with one conditional UPDATE in the confirming
  transaction (the unique index decides between accounts racing for one address: 409
  email_taken), marks it verified, and then tells the old address.

Both purposes share one page (/auth/verify-email) and one endpoint (POST /email/verify);
their links are signed with different salts, so a token names its purpose.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from flask import render_template
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from authserver import accounts, clock, codes, ratelimits, tokens
from authserver.config import settings
from authserver.errors import Problem, db_error_summary, is_deadlock
from authserver.events import Event, EventType, emit
from authserver.extensions import client_ip, db
from authserver.identifiers import normalize_email
from authserver.models import OneTimeCode, User
from authserver.services import services

log = logging.getLogger("authserver.flows.email_verification")

AMR = ["email"]


class _Purpose(codes.Purpose):
    """A purpose whose mails have a resend slot of their own, apart from the address's
    sign-in and reset mails: a sign-up's verification mail must not make the person wait
    before asking for a sign-in link, and a change asked for by one account must not hold
    up the mails of the address's owner."""

    def slot(self, subject: str) -> str:
        return f"{self.name}:{subject}"


VERIFY = _Purpose(
    "verify_email", channel=codes.EMAIL, ttl="email_verification_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A verification mail was just sent. Check your inbox, or wait up to "
                    "{wait} seconds before asking for another.",
    key_label="authserver.verify-email.code", link_salt="authserver.verify-email",
    link_path="/auth/verify-email")
CHANGE = _Purpose(
    "change_email", channel=codes.EMAIL, ttl="email_verification_ttl",
    max_attempts="magic_link_max_attempts", cooldown="magic_link_resend_cooldown",
    cooldown_detail="A confirmation mail was just sent to this address. Check its inbox, or "
                    "wait up to {wait} seconds before asking for another.",
    key_label="authserver.change-email.code", link_salt="authserver.change-email",
    link_path="/auth/verify-email")
PURPOSES = (VERIFY, CHANGE)


class Confirmed(NamedTuple):
    """A used verification or change link or code: the account, now with its proven address."""

    user: User
    purpose: codes.Purpose
    challenge: codes.Challenge
    #: The sign-in a verification opens under EMAIL_VERIFICATION_REQUIRED, else None.
    issued: tokens.IssuedTokens | None


def _invalid_link() -> Problem:
    return Problem(401, "invalid_link", "This confirmation link or code is invalid, expired or "
                                        "already used. Ask for a new one.")


def _taken() -> Problem:
    return Problem(409, "email_taken", "Another account uses this e-mail address.",
                   field="email")


def lifetime(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _mail(template: str, to: str, subject: str, **context: Any) -> None:
    config = settings()
    context = {"app_name": config.app_name, "email": to,
               "base_url": config.public_base_url, **context}
    services().email.send(to, subject, render_template(f"mail/{template}.txt", **context),
                          render_template(f"mail/{template}.html", **context))


def _send(purpose: codes.Purpose, email: str, template: str, subject: str, *,
          limits: list[tuple[ratelimits.Limit, str]], user_id: str | None,
          binding: str | None, **context: Any) -> None:
    def deliver(challenge_id: str, code: str | None) -> None:
        _mail(template, email, subject, link=codes.link_url(purpose, challenge_id), code=code,
              expires=lifetime(purpose.setting("ttl")), **context)

    codes.send(purpose, email, deliver, limits=limits, user_id=user_id, binding=binding)


# -- sending ---------------------------------------------------------------------------------
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
        _send(VERIFY, email, template, subject, user_id=user_id, binding=binding,
              limits=[(ratelimits.VERIFY_IP, client_ip()), (ratelimits.VERIFY_ADDRESS, email)])
    except Problem as problem:
        log.warning("sign-up mail not sent: %s", problem.code)
    except Exception as exc:
        db.session.rollback()
        log.warning("sign-up mail not sent: %s", db_error_summary(exc))


def resend(user: User, *, binding: str | None = None) -> dict[str, Any]:
    """Mail the signed-in account's own address a new verification link and code.
    400 invalid_request without an address or when it is already verified; 429; 422; 503."""
    if user.email is None:
        raise Problem(400, "invalid_request", "This account has no e-mail address yet: add "
                                              "one with POST /api/v1/me/email.")
    if user.email_verified_at is not None:
        raise Problem(400, "invalid_request", "This e-mail address is already verified.")
    email = user.email
    _send(VERIFY, email, "verify_email",
          f"Confirm your e-mail address for {settings().app_name}", user_id=user.id,
          binding=binding,
          limits=[(ratelimits.VERIFY_IP, client_ip()), (ratelimits.VERIFY_ADDRESS, email)])
    return {"sent": True}


def request_change(user: User, email: str, *, binding: str | None = None) -> dict[str, Any]:
    """Mail a link and code to the NEW address `email` of the signed-in `user` (or its first
    address, for a phone-only account). The same answer whether or not another account
    holds the address: that shows only when the change is confirmed (409 email_taken).
    Raises 422 invalid_email, 400 for the account's own address, 429, 503."""
    email = normalize_email(email)
    if email == user.email:
        raise Problem(400, "invalid_request", "This is already the account's address.",
                      field="email")
    _send(CHANGE, email, "email_change",
          f"Confirm your new e-mail address for {settings().app_name}", user_id=user.id,
          binding=binding, current=user.email or user.phone,
          limits=[(ratelimits.CHANGE_IP, client_ip()), (ratelimits.CHANGE_ADDRESS, email)])
    log.info("e-mail change asked user=%s", user.id)
    return {"sent": True}


# -- confirming ------------------------------------------------------------------------------
def _open(token: Any) -> tuple[codes.Purpose, codes.Challenge] | None:
    for purpose in PURPOSES:
        challenge = codes.open_link(purpose, token)
        if challenge is not None:
            return purpose, challenge
    return None


def peek_link(token: str, binding: str | None = None
              ) -> tuple[codes.Challenge, codes.LinkUse] | None:
    """The live link a token names and what it may do here, or None; changes nothing."""
    opened = _open(token)
    return (opened[1], codes.link_use(opened[1], binding)) if opened else None


def confirm_link(token: str, *, binding: str | None = None, client: str = "api") -> Confirmed:
    """Use a link's token once. Through the API (`binding` None) unless it was asked for in
    a browser while MAGIC_LINK_BINDING is on; on the web, in the browser that asked for it.
    401 invalid_link otherwise."""
    opened = _open(token)
    if opened is None:
        raise _invalid_link()
    purpose, challenge = opened
    usable = (codes.link_use(challenge, binding) is codes.LinkUse.HERE if binding is not None
              else not (settings().magic_link_binding and challenge.binding_hash))
    if not usable or not codes.consume(purpose, challenge.id):
        log.info("%s link refused", purpose.name)
        raise _invalid_link()
    emit(Event(EventType.LINK_USED, user_id=challenge.user_id, detail={"purpose": purpose.name}))
    return _finish(purpose, challenge, client)


def confirm_code(email: str, code: str, *, token: str | None = None,
                 client: str = "api") -> Confirmed:
    """Use the 6-digit code of a mail to `email` (or of the mail `token` came in) once: 401
    invalid_link when wrong, expired or used; 429 once wrong tries used it up."""
    tries: list[tuple[codes.Purpose, str, str | None]]
    if token is not None:
        opened = _open(token)
        if opened is None:
            raise _invalid_link()
        tries = [(opened[0], opened[1].subject, opened[1].id)]
    else:
        try:
            subject = normalize_email(email)
        except Problem:
            raise _invalid_link() from None
        tries = [(purpose, subject, None) for purpose in PURPOSES]
    exhausted = None
    for purpose, subject, only in tries:
        verdict = codes.verify(purpose, subject, code, only=only)
        if verdict.outcome is codes.Outcome.MATCHED and verdict.challenge is not None:
            return _finish(purpose, verdict.challenge, client)
        if verdict.outcome is codes.Outcome.EXHAUSTED:
            exhausted = purpose
    if exhausted is not None:
        raise Problem(429, "otp_attempts_exceeded", "Too many wrong codes: this code no longer "
                      "works. Use the link in the e-mail or ask for a new one.",
                      headers={"Retry-After": str(codes.seconds_until_resend(exhausted, None))})
    log.info("e-mail confirmation code refused")
    raise _invalid_link()


def _finish(purpose: codes.Purpose, challenge: codes.Challenge, client: str) -> Confirmed:
    user = db.session.get(User, challenge.user_id) if challenge.user_id else None
    if user is None:  # a "someone tried to sign up" row: it proves nothing
        log.info("%s refused: no account link=%s", purpose.name, challenge.id)
        raise _invalid_link()
    if user.disabled:
        raise Problem(403, "account_disabled", "This account has been disabled.")
    if purpose is CHANGE:
        return _changed(user, challenge)
    if user.email != challenge.subject:  # the address changed since the mail was sent
        raise _invalid_link()
    verified = db.session.execute(
        update(User).where(User.id == user.id, User.email == challenge.subject,
                           User.email_verified_at.is_(None))
        .values(email_verified_at=clock.now()).execution_options(synchronize_session=False)
    ).rowcount == 1  # type: ignore[attr-defined]
    db.session.expire(user)
    codes.supersede(VERIFY, challenge.subject, keep=challenge.id)
    if verified:
        emit(Event(EventType.EMAIL_VERIFIED, user_id=user.id))
    issued = tokens.issue(user, AMR, client=client) \
        if settings().email_verification_required else None
    log.info("e-mail verified link=%s user=%s", challenge.id, user.id)
    return Confirmed(user, purpose, challenge, issued)


def _changed(user: User, challenge: codes.Challenge) -> Confirmed:
    """Switch the account's address to the proven one; the unique index settles a race.
    Committed here: the change stands before the old address is told, and a notice that
    fails to send never undoes it."""
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
    return Confirmed(user, CHANGE, challenge, None)


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
        _mail("email_changed", old, f"Your {app_name} e-mail address was changed", new_email=new)
    except Exception as exc:  # the change stands
        log.warning("e-mail changed notice not sent: %s", type(exc).__name__)
